// Times are sent in UTC; each is shown in the viewer's own time zone, with UTC on hover.
// Served from /static, so the Content-Security-Policy allows no inline script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const format = new Intl.DateTimeFormat(undefined, {
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  });
  for (const el of document.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(at.getTime())) continue;
    el.title = el.textContent;
    el.textContent = format.format(at);
    el.classList.add("local");
  }
});
