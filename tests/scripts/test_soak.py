"""The soak test, for a few seconds: its load, faults and invariant checks keep working."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from sqlalchemy.engine import make_url

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up while the class is built.
    sys.modules["soak"] = module
    spec.loader.exec_module(module)
    return module


def soak_database_url() -> str | None:
    """SQLite by default; on MariaDB a database of its own, since the soak empties the one it is given."""
    url = os.environ.get("DATABASE_URL")
    if not url or make_url(url).get_backend_name() == "sqlite":
        return None
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_soak").render_as_string(hide_password=False)


def test_a_short_soak_under_faults_keeps_every_invariant() -> None:
    soak = load_soak()

    report = soak.run_soak(6, soak_database_url(), shoppers=3, fault_every=0.3, log=lambda _: None)

    assert report.ok, "\n".join(report.lines())
    names = [invariant.name for invariant in report.invariants]
    assert names == [
        "flask points verify",
        "flask coupons verify",
        "no 500 from the API",
        "no WeCom push delivered twice",
        "no lost WeCom push (each delivered or recorded failed)",
        "parking payments settled as the car park has them",
    ]
    operations = report.tally.operations
    for kind in ("shopper.sign_up", "shopper.parking_pay", "staff.credit_purchase", "advisor.task_list"):
        assert operations[kind] > 0, (kind, dict(operations))
    assert sum(report.tally.faults.values()) >= 5
    assert "invariants:" in report.lines()


def test_a_broken_invariant_fails_the_report() -> None:
    soak = load_soak()
    checks = [soak.Invariant("x", True, ""), soak.Invariant("y", False, "")]
    report = soak.SoakReport(1.0, soak.Tally(), checks)

    assert not report.ok
    assert "  FAIL  y: " in report.lines()
