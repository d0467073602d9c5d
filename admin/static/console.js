// The console's only script (served from the binary; the CSP allows no inline script). Pages work without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Ask before a form marked data-confirm does something hard to undo.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  // A copy button copies the value of the input it names (data-copy), for a secret shown once.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", () => {
      const input = document.getElementById(button.dataset.copy);
      if (!input) return;
      input.select();
      const done = () => { button.textContent = "Copied"; };
      if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, () => document.execCommand("copy") && done());
      else if (document.execCommand("copy")) done();
    });
  }
  // An LLM provider preset fills the base URL and the injection style.
  const presets = {
    openai: ["https://api.openai.com/v1", "bearer"],
    anthropic: ["https://api.anthropic.com", "anthropic"],
    azure: ["https://YOUR-RESOURCE.openai.azure.com/openai", "azure"],
    gemini: ["https://generativelanguage.googleapis.com", "gemini"],
    dashscope: ["https://dashscope.aliyuncs.com/compatible-mode/v1", "bearer"],
  };
  const preset = document.getElementById("general-preset");
  if (preset) {
    preset.addEventListener("change", () => {
      const p = presets[preset.value];
      const upstream = document.getElementById("general-upstream");
      const style = document.getElementById("general-style");
      if (p && upstream) upstream.value = p[0];
      if (p && style) style.value = p[1];
    });
  }
});
