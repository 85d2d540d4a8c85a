// File inputs in Chinese. The browser draws <input type="file"> in its own language ("Choose File /
// No file chosen"); each page instead wraps the input in <label class="file-pick"> with a button and
// the chosen file's name in Chinese, the input itself visually hidden (still focusable and reachable
// by a screen reader). Delegated on the document, so inputs drawn later (the desk's detail) work too;
// a form's reset puts the empty text back.
"use strict";
(function () {
  function show(input) {
    const label = input.closest(".file-pick");
    const name = label && label.querySelector(".file-name");
    if (!name) return;
    const file = input.files && input.files[0];
    name.textContent = file ? file.name : name.dataset.empty || "未选择文件";
    label.classList.toggle("chosen", Boolean(file));
  }
  const picked = (el) => el && el.matches && el.matches(".file-pick input[type=file]");
  document.addEventListener("change", (e) => { if (picked(e.target)) show(e.target); });
  document.addEventListener("reset", (e) => {
    setTimeout(() => e.target.querySelectorAll(".file-pick input[type=file]").forEach(show));
  }, true);
  window.showChosenFile = show; // for a page that clears an input itself
})();
