"""bench/REPORT.md: what all.py ran, on which machine, each workload's figure against its baseline and
target, and each benchmark's own printed figures. Rendering is pure (tested); `machine_info` reads the
machine."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from results import Figure

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
NO_VALUE = "–"


@dataclass(frozen=True)
class Machine:
    cpu_model: str
    cores: int
    ram_gib: float
    mariadb: str
    python: str
    system: str
    load_generator: str
    date: str  # UTC, when the suite started
    commit: str


@dataclass(frozen=True)
class BenchRun:
    """One benchmark as the suite ran it. `exit_code` None: it did not finish (timed out, not started);
    `ok` None: it wrote no figures."""

    name: str
    title: str
    note: str
    command: Sequence[str]
    exit_code: int | None
    seconds: float
    figures: list[Figure] = field(default_factory=list)
    ok: bool | None = None
    error: str = ""  # why it failed: the end of what it printed
    output: str = ""  # what it printed as its result (its progress lines left out)

    @property
    def ran(self) -> bool:
        """It finished and wrote its figures."""
        return self.exit_code is not None and self.ok is not None

    @property
    def passed(self) -> bool:
        """It ran and its own checks passed (a missed target is not a failure)."""
        return self.ran and bool(self.ok) and self.exit_code == 0

    def failure(self) -> str:
        """Why it failed, in a few words ('' if it did not)."""
        if self.passed:
            return ""
        if self.exit_code is None:
            return self.error.splitlines()[0] if self.error else "did not finish"
        if self.ok is None:
            return f"exit {self.exit_code}, no figures"
        return f"checks failed, exit {self.exit_code}"


def format_number(value: float) -> str:
    return f"{value:,.1f}"


def format_value(value: float | None, unit: str) -> str:
    return NO_VALUE if value is None else f"{format_number(value)} {unit}"


def format_ratio(ratio: float | None) -> str:
    return NO_VALUE if ratio is None else f"{ratio:.2f}×"


def format_met(met: bool | None) -> str:
    if met is None:
        return NO_VALUE
    return "met" if met else "**missed**"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_rows(runs: Sequence[BenchRun]) -> list[str]:
    """The results table, header included: one row per figure; a bench that failed gets a row saying so
    (with its figures, if it wrote any, when only its checks failed)."""
    rows = ["| workload | ours | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for run in runs:
        for figure in run.figures:
            rows.append(
                "| "
                + " | ".join(
                    _cell(cell)
                    for cell in (
                        figure.workload,
                        format_value(figure.ours, figure.unit),
                        format_value(figure.baseline, figure.unit),
                        format_ratio(figure.ratio),
                        figure.target or NO_VALUE,
                        format_met(figure.met),
                    )
                )
                + " |"
            )
        if not run.passed:
            label = f"{run.title}: its checks" if run.figures else run.title
            rows.append(
                f"| {_cell(label)} | {NO_VALUE} | {NO_VALUE} | {NO_VALUE} | "
                f"{'checks pass' if run.figures else NO_VALUE} | **FAILED** ({_cell(run.failure())}) |"
            )
    return rows


def summary_line(runs: Sequence[BenchRun]) -> str:
    figures = [figure for run in runs for figure in run.figures]
    met = sum(1 for figure in figures if figure.met)
    missed = sum(1 for figure in figures if figure.met is False)
    failed = [run.name for run in runs if not run.passed]
    line = f"{len(runs)} benchmarks, {met} targets met, {missed} missed"
    return line + (f"; FAILED: {', '.join(failed)}" if failed else "; every benchmark's checks passed")


def render(machine: Machine, runs: Sequence[BenchRun], *, mode: str, command: str, rerun: str) -> str:
    """The whole report as Markdown."""
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` ({mode}), started {machine.date}, at commit `{machine.commit}`.",
        "",
    ]
    if mode == "quick":
        lines += [
            "**A `--quick` smoke run: tiny sizes and seconds-long runs. It proves the wiring; its figures "
            "mean nothing and it must not be committed.**",
            "",
        ]
    lines += [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {_cell(machine.cpu_model)} |",
        f"| cores | {machine.cores} |",
        f"| RAM | {machine.ram_gib:.1f} GiB |",
        f"| MariaDB | {_cell(machine.mariadb)} |",
        f"| Python | {_cell(machine.python)} |",
        f"| system | {_cell(machine.system)} |",
        f"| load generator | {_cell(machine.load_generator)} |",
        f"| date | {machine.date} |",
        f"| commit | `{machine.commit}` |",
        "",
        "## Results",
        "",
        summary_line(runs) + ".",
        "",
        *table_rows(runs),
        "",
        "*ours* is the app's figure, *baseline* the same work done the plainest way, measured in the same "
        "run; *ratio* is ours / baseline: for req/s higher is better, for seconds lower. Each workload's "
        "target says which way it goes. A missed target is not a failure; a benchmark fails when it "
        "cannot run or its own checks (ledger clean, same results on both sides, nothing oversold, ...) "
        "do not pass.",
        "",
        "## Workloads",
        "",
    ]
    for run in runs:
        state = "passed" if run.passed else f"FAILED: {run.failure()}"
        lines += [f"### {run.title}", "", f"`{' '.join(run.command)}`: {state}, {run.seconds:,.0f} s.", ""]
        lines += [run.note, ""]
        for figure in run.figures:
            if figure.note:
                lines.append(f"- {figure.workload}: {figure.note}.")
        if any(figure.note for figure in run.figures):
            lines.append("")
        if run.output:
            lines += [
                "<details><summary>its output</summary>",
                "",
                "```",
                run.output,
                "```",
                "",
                "</details>",
                "",
            ]
        if not run.passed and run.error:
            lines += ["Last lines it printed:", "", "```", run.error, "```", ""]
    lines += ["## How to rerun", "", "```bash", rerun, "```", ""]
    return "\n".join(lines)


def machine_info(mariadb_version: str, started: datetime | None = None) -> Machine:
    return Machine(
        cpu_model=_cpu_model(),
        cores=os.cpu_count() or 0,
        ram_gib=_ram_gib(),
        mariadb=mariadb_version,
        python=platform.python_version(),
        system=_system(),
        load_generator=_wrk_version() or "Python http.client threads (wrk not installed)",
        date=(started or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        commit=_commit(),
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    try:
        match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    except OSError:
        return 0.0
    return int(match.group(1)) / 2**20 if match else 0.0


def _system() -> str:
    try:
        match = re.search(r'PRETTY_NAME="([^"]+)"', Path("/etc/os-release").read_text())
    except OSError:
        match = None
    name = match.group(1) if match else platform.system()
    return f"{name}, kernel {platform.release()}"


def _wrk_version() -> str | None:
    if not shutil.which("wrk"):
        return None
    completed = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (completed.stdout or completed.stderr).strip().splitlines()
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer": the version, without the notice
    return first[0].split(" Copyright")[0] if first else "wrk"


def _commit() -> str:
    def git(*args: str) -> str:
        completed = subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
        )
        return completed.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")
