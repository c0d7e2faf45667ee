"""Alert rules, notification channels and delivery."""
