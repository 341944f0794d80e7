"""`flask import members FILE` and `flask import purchases FILE`: load a CSV or .xlsx export of a POS or
an old CRM, with a progress bar, a report of rejected and conflicting rows, and resume after a stop."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.db import run_transaction, transaction, utcnow
from app.extensions import extensions, mall_time
from app.models import ImportJob, ImportKind, ImportStatus
from app.services import imports
from app.services.import_files import ImportFileInvalid


def register_import_commands(app: Flask) -> None:
    group = AppGroup("import", help="Import members or purchases from a POS or an old CRM (CSV or .xlsx).")
    for kind in ImportKind:
        group.add_command(_import_command(kind))
    app.cli.add_command(group)


def _import_command(kind: ImportKind) -> click.Command:
    fields = ", ".join(field.name for field in imports.FIELDS[kind])

    @click.command(
        kind.value,
        help=f"Import {kind.value} from FILE (CSV in UTF-8, UTF-8 with BOM or GBK; or .xlsx). "
        f"Fields: {fields}. Columns are found by header (common Chinese headers are known) or mapped "
        "with --map/--mapping-file. Safe to re-run: a stopped import resumes, a finished one changes "
        "nothing.",
    )
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--map", "pairs", multiple=True, metavar="FIELD=COLUMN", help="a column for a field")
    @click.option(
        "--mapping-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help='JSON object of field → column header, e.g. {"phone": "手机号码"}',
    )
    @click.option("--encoding", help="CSV encoding (default: detected; UTF-8 with or without BOM, else GBK)")
    @click.option(
        "--source",
        default=imports.DEFAULT_SOURCE,
        show_default=True,
        help="the system the data comes from: opening points are credited once per member and source",
    )
    @click.option(
        "--points-expire-on",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        help="expiry of opening points for rows without their own (default: the mall's expiry rule)",
    )
    @click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        help=f"rows per transaction (default {imports.LOADERS[kind].batch_size:,})",
    )
    @click.option(
        "--report", type=click.Path(dir_okay=False, path_type=Path), help="where to write the report"
    )
    @click.option("--no-progress", is_flag=True, help="no progress bar")
    @with_appcontext
    def command(
        file: Path,
        pairs: tuple[str, ...],
        mapping_file: Path | None,
        encoding: str | None,
        source: str,
        points_expire_on: datetime | None,
        batch_size: int | None,
        report: Path | None,
        no_progress: bool,
    ) -> None:
        request = imports.ImportRequest(
            kind=kind,
            path=file,
            file_name=file.name,
            mapping=_mapping(pairs, mapping_file),
            encoding=encoding,
            source=source,
            points_expire_on=points_expire_on.date() if points_expire_on else None,
        )
        with transaction() as session:
            job = imports.prepare(session, request, now=utcnow())
        if job.rows_done:
            click.echo(f"resuming import {job.id}: {job.rows_done:,} rows were loaded before", err=True)
        bar = None if no_progress else _ProgressBar()
        started = time.monotonic()
        try:
            job = imports.run(
                job.id,
                file,
                run_in_transaction=lambda work: run_transaction(work, app=_app()),
                vault=extensions().phone_vault,
                clock=mall_time,
                batch_size=batch_size,
                progress=bar,
            )
        except (ImportFileInvalid, imports.ImportInProgress) as error:
            raise click.ClickException(error.message) from error
        except KeyboardInterrupt:
            click.echo("\ninterrupted: run the same command again to resume", err=True)
            raise SystemExit(130) from None
        finally:
            if bar:
                bar.close()
        _summarise(
            job, time.monotonic() - started, report or file.with_name(f"{file.stem}.import-report.csv")
        )

    return command


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _mapping(pairs: tuple[str, ...], mapping_file: Path | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    if mapping_file is not None:
        try:
            loaded = json.loads(mapping_file.read_text(encoding="utf-8-sig"))
        except ValueError as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="--mapping-file") from error
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise click.BadParameter("must be a JSON object of field → column", param_hint="--mapping-file")
        mapping.update(loaded)
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise click.BadParameter(f"{pair!r} is not FIELD=COLUMN", param_hint="--map")
        mapping[field.strip()] = column.strip()
    return mapping


def _summarise(job: ImportJob, seconds: float, report_path: Path) -> None:
    click.echo(
        f"import {job.id} ({job.kind.value}) {job.status.value}: {job.rows_done:,} rows in {seconds:.1f} s; "
        f"{job.created:,} created, {job.merged:,} merged, {job.unchanged:,} unchanged, "
        f"{job.rejected:,} rejected, {job.conflicts:,} conflicts"
    )
    if job.status is ImportStatus.FINISHED and (job.rejected or job.conflicts):
        with transaction() as session, report_path.open("w", encoding="utf-8", newline="") as out:
            for chunk in imports.report_csv(session, job):
                out.write(chunk)
        click.echo(f"report of rejected and conflicting rows: {report_path}")


class _ProgressBar:
    """Rows loaded, rows per second and the time left, on stderr; by rows for Excel, by bytes for CSV."""

    STEPS = 1000

    def __init__(self) -> None:
        self._bar: Any = None
        self._done = 0
        self._started = time.monotonic()
        self._first_rows: int | None = None
        self._rows = 0

    def __call__(self, progress: imports.Progress) -> None:
        if self._bar is None:
            self._first_rows = progress.rows_done
            self._bar = click.progressbar(
                length=self.STEPS,
                label="importing",
                file=sys.stderr,
                show_eta=True,
                item_show_func=self._rate,
            )
            self._bar.__enter__()
        self._rows = progress.rows_done
        if progress.rows_total:
            fraction = progress.rows_done / progress.rows_total
        else:
            fraction = progress.fraction or 0.0
        steps = min(int(fraction * self.STEPS), self.STEPS)
        self._bar.update(steps - self._done, self._rows)
        self._done = steps

    def _rate(self, rows: int | None) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        loaded = (rows or 0) - (self._first_rows or 0)
        return f"{rows or 0:,} rows · {loaded / elapsed:,.0f} rows/s"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
