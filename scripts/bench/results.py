"""What every benchmark hands the suite (all.py): its key figures as JSON (`--json PATH`), and `--quick`.

A figure is one line of the suite's table: a workload, our figure, the baseline's measured in the same
run (None when there is none), the unit, the ratio ours/baseline, the target in words and whether it was
met (None when the workload has no target). `ok` says whether the benchmark's own checks passed (ledger
clean, same results on both sides, ...): a missed target is not a failed check.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    workload: str
    ours: float | None
    baseline: float | None
    unit: str
    target: str
    met: bool | None
    ratio: float | None = None
    note: str = ""

    @classmethod
    def compared(
        cls, workload: str, ours: float, baseline: float, unit: str, target: str, met: bool, note: str = ""
    ) -> Figure:
        """A figure with its baseline; the ratio is ours / baseline (None if the baseline is 0)."""
        ratio = ours / baseline if baseline else None
        return cls(workload, ours, baseline, unit, target, met, ratio, note)


def short_count(count: int) -> str:
    """1,000,000 as 1M, 20,000 as 20k: sizes in workload names."""
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count >= 1_000 and count % 1_000 == 0:
        return f"{count // 1_000}k"
    return f"{count:,}"


def add_suite_options(parser: argparse.ArgumentParser, quick: dict[str, Any]) -> None:
    """`--json PATH` and `--quick` (a tiny smoke run: the given option defaults, explicit options win)."""
    shown = ", ".join(f"--{name.replace('_', '-')} {value}" for name, value in quick.items())
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="also write the key figures as JSON to PATH (what scripts/bench/all.py collects)",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"a tiny smoke run, figures meaningless: {shown}"
    )


def parse_with_quick(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, quick: dict[str, Any]
) -> argparse.Namespace:
    """Parse `argv`; with `--quick`, the `quick` values replace the defaults of the options not given."""
    known, _ = parser.parse_known_args(argv)
    if known.quick:
        parser.set_defaults(**quick)
    return parser.parse_args(argv)


def write_json(
    path: Path | None, bench: str, figures: Sequence[Figure], *, ok: bool, settings: dict[str, Any]
) -> None:
    """Write the figures to `path` (nothing without one)."""
    if path is None:
        return
    document = {
        "bench": bench,
        "ok": ok,
        "settings": settings,
        "figures": [asdict(figure) for figure in figures],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def read_json(path: Path) -> tuple[bool, list[Figure], dict[str, Any]]:
    """(ok, figures, settings) from a file `write_json` wrote."""
    document = json.loads(path.read_text(encoding="utf-8"))
    figures = [Figure(**figure) for figure in document["figures"]]
    return bool(document["ok"]), figures, dict(document.get("settings") or {})
