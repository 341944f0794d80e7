"""Writing import files and running `flask import` as an operator would, then reading what it left."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from click.testing import Result
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import extensions
from app.models import Member


def write_csv(path: Path, rows: list[list[Any]], *, encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as file:
        csv.writer(file).writerows(rows)
    return path


def import_file(app: Flask, kind: str, path: Path, *options: str) -> Result:
    return app.test_cli_runner().invoke(args=["import", kind, str(path), "--no-progress", *options])


def report_rows(path: Path) -> list[dict[str, str]]:
    """The rows of the report `flask import` wrote next to the imported file."""
    with path.with_name(f"{path.stem}.import-report.csv").open(encoding="utf-8-sig", newline="") as report:
        return list(csv.DictReader(report))


def members_by_phone(app: Flask, session: Session) -> dict[str, Member]:
    session.expire_all()
    with app.app_context():
        vault = extensions().phone_vault
    return {vault.reveal(member.phone_ciphertext): member for member in session.scalars(select(Member))}
