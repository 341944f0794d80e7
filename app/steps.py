"""Timing the steps of a batch job (the nightly refresh, task generation) for its report."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class StepReport:
    name: str
    seconds: float = 0.0
    rows: int = 0


@contextmanager
def timed(steps: list[StepReport], name: str) -> Iterator[StepReport]:
    """Append step `name` to `steps`, with the time it took (also when it fails)."""
    step = StepReport(name)
    began = time.perf_counter()
    try:
        yield step
    finally:
        step.seconds = time.perf_counter() - began
        steps.append(step)
