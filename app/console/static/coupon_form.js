// Shows only the terms of the chosen coupon kind (the server ignores the others anyway).
(function () {
  var kind = document.getElementById("coupon-kind");
  if (!kind) return;
  function sync() {
    document.querySelectorAll(".kind-fields").forEach(function (box) {
      var kinds = (box.getAttribute("data-kinds") || "").split(" ");
      box.hidden = kind.value !== "" && kinds.indexOf(kind.value) === -1;
    });
  }
  kind.addEventListener("change", sync);
  sync();
})();
