// The console works without this file. With it, an action's button is disabled while the
// server works (a release can take seconds) so nobody wonders whether the click counted;
// a second click would be harmless anyway: every action happens at most once.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!form.classList || !form.classList.contains("act")) { return; }
  window.setTimeout(function () {
    form.querySelectorAll("button[type=submit]").forEach(function (button) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      button.textContent = "Working…";
    });
  }, 0);
});
