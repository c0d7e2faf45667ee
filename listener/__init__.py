"""listener: watch brand mentions and reviews, score their sentiment, alert on trouble."""

__version__ = "0.1.0"
USER_AGENT = f"listener/{__version__} (+https://github.com/listener-dev/listener)"
