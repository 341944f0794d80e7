// The rule builder: add and remove condition rows, point each value box at its field's choices, and
// show the preview's 422 (a rule the service refused, in Chinese) instead of dropping it as htmx does.
(function () {
  const builder = document.querySelector("[data-rule-builder]");
  if (!builder) return;
  const rows = builder.querySelector("[data-rows]");
  const template = builder.querySelector("template[data-row-template]");
  // A removed row fires no change of its own: tell the preview.
  const changed = () => builder.dispatchEvent(new Event("change", { bubbles: true }));
  const bindChoices = (row) => {
    const field = row.querySelector("select[name=field]").value;
    row.querySelector("input[name=value]").setAttribute("list", "values-" + field);
  };
  builder.addEventListener("click", (event) => {
    if (event.target.matches("[data-add-row]") && rows && template) {
      rows.appendChild(template.content.cloneNode(true));
    } else if (event.target.matches("[data-remove-row]")) {
      event.target.closest("[data-row]").remove();
      changed();
    }
  });
  builder.addEventListener("change", (event) => {
    if (event.target.name === "field") bindChoices(event.target.closest("[data-row]"));
  });
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.xhr.status === 422 && event.detail.target.id === "rule-preview") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
