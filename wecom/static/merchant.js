// Merchant assistant: scan with WeCom's JS-SDK (or type), then call the staff API with the page's token.
(function () {
  "use strict";
  var page = JSON.parse(document.getElementById("merchant-page").textContent);
  var result = document.getElementById("result");
  var scanReady = false;

  function show(message, ok) {
    result.hidden = false;
    result.className = ok ? "notice" : "error";
    result.textContent = message;
  }

  if (page.wx && window.wx) {
    wx.config(page.wx.config);
    wx.ready(function () {
      wx.agentConfig(Object.assign({}, page.wx.agentConfig, {
        success: function () { scanReady = true; },
        fail: function () { scanReady = true; }  // scanQRCode also works with wx.config alone
      }));
      scanReady = true;
    });
    wx.error(function () { scanReady = false; });
  }

  document.querySelectorAll("button.scan").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = button.form.elements[button.dataset.target];
      if (!scanReady) { show("扫码不可用，请手动输入", false); input.focus(); return; }
      wx.scanQRCode({
        desc: "scanQRCode desc", needResult: 1, scanType: ["qrCode", "barCode"],
        success: function (res) { input.value = res.resultStr; },
        error: function () { show("扫码失败，请手动输入", false); }
      });
    });
  });

  function fen(value) { return value ? Math.round(parseFloat(value) * 100) : null; }

  function post(url, body, done) {
    fetch(url, {
      method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": "Bearer " + page.token},
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (json) { return {ok: response.ok, json: json}; });
    }).then(function (answer) {
      if (!answer.ok) { show(answer.json.message || "操作失败", false); return; }
      show(done(answer.json), true);
      setTimeout(function () { window.location.reload(); }, 1500);
    }).catch(function () { show("网络异常，请重试", false); });
  }

  document.getElementById("purchase-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target.elements;
    post(page.api.purchases, {
      member_code: form.member_code.value.trim(), store_id: page.storeId,
      receipt_no: form.receipt_no.value.trim(), amount_fen: fen(form.amount_yuan.value)
    }, function (json) {
      return "登记成功" + (json.purchase && json.purchase.points_earned != null ? "，积分 +" + json.purchase.points_earned : "");
    });
  });

  document.getElementById("coupon-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target.elements;
    var body = {code: form.code.value.trim(), store_id: page.storeId};
    var amount = fen(form.order_amount_yuan.value);
    if (amount) { body.order_amount_fen = amount; }
    post(page.api.couponRedemptions, body, function (json) {
      return "核销成功" + (json.deduction_fen != null ? "，抵扣 ¥" + (json.deduction_fen / 100).toFixed(2) : "");
    });
  });
})();
