"""The suite's report writer (scripts/bench/report.py and all.py's collection): fed sample results,
never a benchmark run."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import report
import results
from results import Figure

suite = importlib.import_module("all")

MACHINE = report.Machine(
    cpu_model="AMD EPYC 7B13",
    cores=2,
    ram_gib=23.5,
    mariadb="10.11.19-MariaDB-0+deb12u1",
    python="3.11.7",
    system="Debian GNU/Linux 12 (bookworm), kernel 6.1",
    load_generator="wrk debian/4.1.0-3+b2 [epoll]",
    date="2026-12-07 12:00 UTC",
    commit="abc1234",
)

EARN_JSON = {
    "bench": "earn",
    "ok": True,
    "settings": {"clients": 32},
    "figures": [
        {
            "workload": "purchase crediting (earn), throughput",
            "ours": 364.4,
            "baseline": 684.2,
            "unit": "req/s",
            "target": "ratio >= 0.40",
            "met": True,
            "ratio": 0.5326,
            "note": "median of 3 rounds",
        },
        {
            "workload": "purchase crediting (earn), p99 at 150 req/s offered",
            "ours": 57.25,
            "baseline": None,
            "unit": "ms",
            "target": "< 50 ms",
            "met": False,
            "ratio": None,
            "note": "",
        },
    ],
}


def bench_run(
    name: str, document: dict | None, tmp_path: Path, *, exit_code: int | None = 0
) -> report.BenchRun:
    """What all.py makes of a benchmark that wrote `document` as its --json (None: wrote nothing)."""
    ok, figures = None, []
    if document is not None:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        ok, figures, _ = results.read_json(path)
    return report.BenchRun(
        name=name,
        title=f"{name} title",
        note=f"what {name} measures",
        command=[f"scripts/bench/{name}.py"],
        exit_code=exit_code,
        seconds=12.0,
        figures=figures,
        ok=ok,
        error="" if exit_code == 0 and ok else "Traceback ...\nSystemExit: cannot connect to MariaDB",
        output="side  req/s",
    )


def test_each_figure_is_one_row_with_its_values_units_ratio_and_verdict(tmp_path: Path) -> None:
    rows = report.table_rows([bench_run("earn", EARN_JSON, tmp_path)])

    assert rows[:2] == [
        "| workload | ours | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    assert rows[2:] == [
        "| purchase crediting (earn), throughput | 364.4 req/s | 684.2 req/s | 0.53× | ratio >= 0.40 | met |",
        "| purchase crediting (earn), p99 at 150 req/s offered | 57.2 ms | – | – | < 50 ms | **missed** |",
    ]


def test_figures_written_by_a_bench_come_back_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "out" / "home.json"
    figure = Figure.compared("home vs ping", 300.0, 1200.0, "req/s", "ratio >= 0.25", True, "3 rounds")
    results.write_json(path, "home", [figure], ok=False, settings={"clients": 32})

    ok, figures, settings = results.read_json(path)

    assert (ok, figures, settings) == (False, [figure], {"clients": 32})
    assert figure.ratio == 0.25


def test_a_zero_baseline_has_no_ratio() -> None:
    assert Figure.compared("x", 1.0, 0.0, "s", "", None).ratio is None


@pytest.mark.parametrize(("value", "shown"), [(1584.94, "1,584.9 req/s"), (0.049, "0.0 req/s"), (None, "–")])
def test_values_are_shown_with_one_decimal_and_thousands_separators(value: float | None, shown: str) -> None:
    assert report.format_value(value, "req/s") == shown


@pytest.mark.parametrize(
    ("ratio", "shown"), [(0.5326, "0.53×"), (2.0849, "2.08×"), (12.0, "12.00×"), (None, "–")]
)
def test_ratios_are_shown_with_two_decimals(ratio: float | None, shown: str) -> None:
    assert report.format_ratio(ratio) == shown


def test_a_bench_that_wrote_nothing_is_a_failed_row_and_the_others_still_show(tmp_path: Path) -> None:
    runs = [bench_run("nightly", None, tmp_path, exit_code=1), bench_run("earn", EARN_JSON, tmp_path)]

    rows = report.table_rows(runs)

    assert rows[2] == "| nightly title | – | – | – | – | **FAILED** (exit 1, no figures) |"
    assert len(rows) == 5
    assert report.summary_line(runs) == "2 benchmarks, 1 targets met, 1 missed; FAILED: nightly"


def test_failed_checks_keep_the_figures_and_add_a_failed_row(tmp_path: Path) -> None:
    document = {**EARN_JSON, "ok": False}

    rows = report.table_rows([bench_run("earn", document, tmp_path, exit_code=1)])

    assert len(rows) == 5
    assert (
        rows[-1]
        == "| earn title: its checks | – | – | – | checks pass | **FAILED** (checks failed, exit 1) |"
    )


def test_a_bench_stopped_by_the_timeout_says_so() -> None:
    run = report.BenchRun(
        "import",
        "import title",
        "",
        ["scripts/bench/import.py"],
        None,
        600.0,
        error="stopped after 600 s\n...",
    )

    assert (
        report.table_rows([run])[-1] == "| import title | – | – | – | – | **FAILED** (stopped after 600 s) |"
    )


def test_the_report_names_the_machine_the_run_and_how_to_rerun(tmp_path: Path) -> None:
    runs = [bench_run("earn", EARN_JSON, tmp_path), bench_run("nightly", None, tmp_path, exit_code=1)]

    text = report.render(MACHINE, runs, mode="default", command="scripts/bench/all.py", rerun="make bench")

    for expected in (
        "| CPU | AMD EPYC 7B13 |",
        "| cores | 2 |",
        "| RAM | 23.5 GiB |",
        "| MariaDB | 10.11.19-MariaDB-0+deb12u1 |",
        "| Python | 3.11.7 |",
        "| date | 2026-12-07 12:00 UTC |",
        "| commit | `abc1234` |",
        "| purchase crediting (earn), throughput | 364.4 req/s | 684.2 req/s | 0.53× | ratio >= 0.40 | met |",
        "### earn title",
        "what earn measures",
        "- purchase crediting (earn), throughput: median of 3 rounds.",
        "SystemExit: cannot connect to MariaDB",
        "```bash\nmake bench\n```",
    ):
        assert expected in text
    assert "smoke run" not in text


def test_a_quick_report_says_its_figures_mean_nothing(tmp_path: Path) -> None:
    text = report.render(MACHINE, [], mode="quick", command="scripts/bench/all.py --quick", rerun="")

    assert "A `--quick` smoke run" in text


def test_the_suite_collects_a_bench_that_crashes_as_failed_and_one_that_writes_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """all.run_bench on two stand-in scripts (not benchmarks): one writes its figures, one dies."""
    monkeypatch.setattr(suite, "BENCH_DIR", tmp_path)
    (tmp_path / "good.py").write_text(
        "import json, sys\n"
        "path = sys.argv[sys.argv.index('--json') + 1]\n"
        f"json.dump({EARN_JSON!r}, open(path, 'w'))\n"
        "print('# progress'); print('the table')\n",
        encoding="utf-8",
    )
    (tmp_path / "bad.py").write_text("raise SystemExit('cannot connect to MariaDB')\n", encoding="utf-8")
    plan = suite.Plan(quick=True, full=False, database_url=suite.DEFAULT_DATABASE_URL, redis_url="")
    logs = tmp_path / "logs"
    logs.mkdir()

    good = suite.run_bench(
        suite.Bench("good", "good.py", "Good", "", lambda plan: ["--quick"]), plan, log_dir=logs, timeout=60
    )
    bad = suite.run_bench(
        suite.Bench("bad", "bad.py", "Bad", "", lambda plan: []), plan, log_dir=logs, timeout=60
    )

    assert good.passed and [figure.workload for figure in good.figures] == [
        "purchase crediting (earn), throughput",
        "purchase crediting (earn), p99 at 150 req/s offered",
    ]
    assert good.output == "the table"
    assert not bad.passed and bad.failure() == "exit 1, no figures"
    assert "cannot connect to MariaDB" in bad.error


def test_each_bench_gets_its_own_database_named_after_the_suite_s() -> None:
    plan = suite.Plan(
        quick=False, full=False, database_url="mysql+pymysql://root@127.0.0.1:3306/mm_suite", redis_url=""
    )

    assert plan.database("home") == "mysql+pymysql://root@127.0.0.1:3306/mm_suite_home"


def test_the_report_never_shows_a_database_password() -> None:
    assert suite.hide_password("mysql+pymysql://bench:s3cret@db:3306/mm_suite_home") == (
        "mysql+pymysql://bench:***@db:3306/mm_suite_home"
    )
    assert suite.hide_password("--quick") == "--quick"


def test_the_ten_million_member_night_runs_only_with_full() -> None:
    default = suite.Plan(quick=False, full=False, database_url=suite.DEFAULT_DATABASE_URL, redis_url="")
    full = suite.Plan(quick=False, full=True, database_url=suite.DEFAULT_DATABASE_URL, redis_url="")

    assert "nightly_10m" not in [bench.name for bench in suite.selected(default, None)]
    assert [bench.name for bench in suite.selected(full, None)][-1] == "nightly_10m"
    assert [bench.name for bench in suite.selected(default, ["home", "earn"])] == ["earn", "home"]


def test_quick_runs_pass_quick_to_every_bench() -> None:
    plan = suite.Plan(quick=True, full=False, database_url=suite.DEFAULT_DATABASE_URL, redis_url="")

    assert all("--quick" in bench.arguments(plan) for bench in suite.selected(plan, None))


def test_the_suite_refuses_an_unknown_bench(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        suite.parse_args(["--only", "earn,nope"])

    assert "unknown benchmarks: nope" in capsys.readouterr().err
