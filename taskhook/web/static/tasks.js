// The Tasks tab's only script: progressive help, every page works without it.
(function () {
  "use strict";

  // Local time: tell the server the browser's time zone (its IANA name, and its current
  // UTC offset in minutes as a fallback) so date filters and times use it.
  function fillZone() {
    var name = document.getElementById("f-tzname");
    var offset = document.getElementById("f-tzoffset");
    var choice = document.getElementById("f-tz");
    if (!name || !offset || !choice) return;
    if (choice.value === "local") {
      try { name.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { name.value = ""; }
      offset.value = String(-new Date().getTimezoneOffset());
    } else {
      name.value = "";
      offset.value = "";
    }
  }

  // Filters: leave empty fields out of the URL, so shared links stay short and readable.
  function tidyFilters(event) {
    fillZone();
    var form = event.target;
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.name && el.value === "") el.disabled = true;
    });
    if (form.elements.tz && form.elements.tz.value === "utc") form.elements.tz.disabled = true;
    if (form.elements.limit && form.elements.limit.value === "50") form.elements.limit.disabled = true;
  }

  // Fix: say at once whether the response is a valid JSON object (the server checks too).
  function checkFix() {
    var area = document.getElementById("fix-response");
    var out = document.getElementById("fix-check");
    if (!area || !out) return;
    var ok = true, message = "Valid JSON object.";
    try {
      var value = JSON.parse(area.value);
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        ok = false; message = "The response must be a JSON object ({...}).";
      }
    } catch (e) {
      ok = false; message = "Not valid JSON: " + e.message;
    }
    out.textContent = message;
    out.className = "small " + (ok ? "ok" : "bad");
    area.setAttribute("aria-invalid", ok ? "false" : "true");
  }

  // Back to a page whose form was tidied: enable its fields again.
  window.addEventListener("pageshow", function () {
    var filters = document.getElementById("filters");
    if (!filters) return;
    Array.prototype.forEach.call(filters.elements, function (el) { el.disabled = false; });
  });

  document.addEventListener("DOMContentLoaded", function () {
    var filters = document.getElementById("filters");
    if (filters) {
      filters.addEventListener("submit", tidyFilters);
      var tz = document.getElementById("f-tz");
      if (tz) tz.addEventListener("change", fillZone);
    }
    var area = document.getElementById("fix-response");
    if (area) area.addEventListener("input", checkFix);
  });
})();
