// The dashboard's charts; their data comes embedded in the page as JSON, keyed by chart
// (each container says which one it holds in data-chart).
(function () {
  if (typeof echarts === "undefined") return;
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var axisGrid = { left: 56, right: 24, top: 40, bottom: 32 };

  function lines(d, kind) {
    return {
      tooltip: { trigger: "axis" },
      legend: { data: d.series.map(function (s) { return s.name; }) },
      grid: axisGrid,
      xAxis: { type: "category", data: d.dates },
      yAxis: { type: "value", minInterval: 1 },
      series: d.series.map(function (s) {
        return { name: s.name, type: kind, data: s.data };
      })
    };
  }

  var options = {
    trend: function (d) {
      // Totals in the hundreds of thousands would flatten the daily sign-ups: each gets its own axis.
      var option = lines(d, "line");
      option.grid = { left: 64, right: 56, top: 40, bottom: 32 };
      option.yAxis = [
        { type: "value", name: d.series[0].name, minInterval: 1 },
        { type: "value", name: d.series[1].name, minInterval: 1, splitLine: { show: false } }
      ];
      option.series[1].yAxisIndex = 1;
      return option;
    },
    points: function (d) { return lines(d, "bar"); },
    coupons: function (d) { return lines(d, "line"); },
    tiers: function (d) {
      return {
        tooltip: { trigger: "item", formatter: "{b}：{c} 人（{d}%）" },
        legend: { bottom: 0 },
        series: [{
          type: "pie",
          radius: ["35%", "65%"],
          label: { formatter: "{b}\n{c}" },
          // Empty tiers stay in the legend but get no label of their own.
          data: d.map(function (tier) {
            return tier.value ? tier : { name: tier.name, value: 0, label: { show: false }, labelLine: { show: false } };
          })
        }]
      };
    },
    segments: function (d) {
      return {
        tooltip: { trigger: "axis" },
        grid: { left: 88, right: 32, top: 16, bottom: 24 },
        xAxis: { type: "value", minInterval: 1 },
        yAxis: { type: "category", inverse: true, data: d.map(function (s) { return s.name; }) },
        series: [{ type: "bar", name: "会员数", data: d.map(function (s) { return s.value; }) }]
      };
    }
  };

  var charts = [];
  document.querySelectorAll("[data-chart]").forEach(function (holder) {
    var key = holder.getAttribute("data-chart");
    if (!data[key] || !options[key]) return;
    var chart = echarts.init(holder);
    chart.setOption(options[key](data[key]));
    charts.push(chart);
  });
  window.addEventListener("resize", function () {
    charts.forEach(function (chart) { chart.resize(); });
  });
})();
