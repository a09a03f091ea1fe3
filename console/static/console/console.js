// Small niceties on top of pages that work without JavaScript: copy buttons, print, switch on select.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var field = document.querySelector(copy.getAttribute("data-copy"));
      var status = copy.parentElement.querySelector(".copy-status");
      var done = function (text) { if (status) { status.textContent = text; } };
      if (!field) { return; }
      field.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () { done("Copied."); },
          function () { done("Press Ctrl+C (⌘C) to copy."); });
      } else {
        done(document.execCommand && document.execCommand("copy") ? "Copied." : "Press Ctrl+C (⌘C) to copy.");
      }
      return;
    }
    if (event.target.closest("[data-print]")) { window.print(); }
  });
  document.addEventListener("change", function (event) {
    if (event.target.matches("select[data-autosubmit]")) { event.target.form.submit(); }
  });
})();
