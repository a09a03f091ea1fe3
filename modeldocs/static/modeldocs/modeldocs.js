// Copy buttons of the model docs pages: "Copy Markdown" copies /docs/models/<slug>.md exactly as served,
// "Copy" copies one code block's text. Falls back to execCommand where the Clipboard API is unavailable
// (pages served over plain HTTP on a non-local host).
(function () {
  "use strict";

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand("copy");
    document.body.removeChild(area);
    if (!ok) throw new Error("the browser refused to copy");
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
    } else {
      fallbackCopy(text);
    }
  }

  function announce(message) {
    var status = document.getElementById("copy-status");
    if (status) status.textContent = message;
  }

  function flash(button, label) {
    var original = button.dataset.label || button.textContent;
    button.dataset.label = original;
    button.textContent = label;
    window.setTimeout(function () { button.textContent = original; }, 2000);
  }

  async function copyMarkdown(button) {
    try {
      var response = await fetch(button.dataset.copyUrl, { headers: { Accept: "text/markdown" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      await copyText(await response.text());
      flash(button, button.dataset.doneLabel || "Copied");
      announce("Markdown copied to the clipboard.");
    } catch (error) {
      announce("Could not copy the Markdown (" + error.message + "). Open “View as Markdown” instead.");
    }
  }

  async function copyCode(button) {
    var target = document.getElementById(button.dataset.copyTarget);
    if (!target) return;
    try {
      await copyText(target.textContent);
      flash(button, "Copied");
      announce("Code copied to the clipboard.");
    } catch (error) {
      announce("Could not copy (" + error.message + "). Select the code and copy it by hand.");
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button) return;
    if (button.classList.contains("copy-markdown")) copyMarkdown(button);
    else if (button.classList.contains("copy-code")) copyCode(button);
  });
})();
