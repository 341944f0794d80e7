// The dashboard's trend chart; the data comes embedded in the page as JSON.
(function () {
  var holder = document.getElementById("trend-chart");
  if (!holder || typeof echarts === "undefined") return;
  var data = JSON.parse(document.getElementById("trend-data").textContent);
  var chart = echarts.init(holder);
  chart.setOption({
    tooltip: { trigger: "axis" },
    legend: { data: data.series.map(function (s) { return s.name; }) },
    grid: { left: 48, right: 24, top: 40, bottom: 32 },
    xAxis: { type: "category", data: data.dates },
    yAxis: { type: "value" },
    series: data.series.map(function (s) { return { name: s.name, type: "line", smooth: true, data: s.data }; })
  });
  window.addEventListener("resize", function () { chart.resize(); });
})();
