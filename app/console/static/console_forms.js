// Fields that only matter for some choices: `data-when="select_name:value1 value2"` hides the element
// unless the select holds one of the values (the server ignores hidden fields anyway).
(function () {
  var dependents = document.querySelectorAll("[data-when]");
  function sync() {
    dependents.forEach(function (element) {
      var rule = element.getAttribute("data-when").split(":");
      var select = document.querySelector('select[name="' + rule[0] + '"]');
      if (!select) return;
      element.hidden = select.value !== "" && rule[1].split(" ").indexOf(select.value) === -1;
    });
  }
  document.querySelectorAll("select").forEach(function (select) { select.addEventListener("change", sync); });
  sync();
})();
