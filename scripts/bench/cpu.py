"""CPU time used by the processes of a benchmark, read from /proc (Linux), to say where the cores went."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def tree_seconds(root_pid: int) -> float:
    """CPU seconds of a process and its direct children (a gunicorn master and its workers)."""
    pids = [root_pid] + [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _parent_of(int(entry.name)) == root_pid
    ]
    return sum(process_seconds(pid) for pid in pids)


def find_process(name: str) -> int | None:
    """The pid of a local process by its command name, e.g. the MariaDB server."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    return int(entry.name)
            except OSError:
                continue
    return None


def machine_seconds() -> float:
    """Busy CPU seconds of the whole machine, all cores and processes together."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def own_seconds() -> float:
    return time.process_time()


def waited_children_seconds() -> float:
    """CPU seconds of finished child processes (wrk, once subprocess.run has returned)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


Meter = dict[str, Callable[[], float]]


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds per named group of processes over a measured run, and of the whole machine."""

    seconds: dict[str, float]
    machine: float
    wall: float

    def per_request_ms(self, requests: int) -> dict[str, float]:
        return {name: used * 1000 / requests if requests else 0.0 for name, used in self.seconds.items()}

    def cores_busy(self) -> float:
        """Cores kept busy by the benchmark's own processes, on average."""
        return sum(self.seconds.values()) / self.wall if self.wall else 0.0

    def other_cores_busy(self) -> float:
        """Cores taken by everything else on the machine meanwhile (other jobs skew the figures)."""
        return max(self.machine - sum(self.seconds.values()), 0.0) / self.wall if self.wall else 0.0


class CpuSampler:
    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self._start = {name: read() for name, read in meter.items()}
        self._machine = machine_seconds()
        self._began = time.perf_counter()

    def stop(self) -> CpuUse:
        wall = time.perf_counter() - self._began
        used = {name: read() - self._start[name] for name, read in self._meter.items()}
        return CpuUse(used, machine_seconds() - self._machine, wall)
