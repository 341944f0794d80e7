"""`flask keys rotate`: re-encrypt members' phones under the current PHONE_ENCRYPTION_KEYS key."""

from __future__ import annotations

from functools import partial

import click
from flask import Flask
from flask.cli import AppGroup

from app.db import run_transaction, transaction
from app.extensions import extensions
from app.pii import PhoneKeyError
from app.services import phone_keys


def register_key_commands(app: Flask) -> None:
    group = AppGroup("keys", help="Encryption keys of personal data.")

    @group.command("rotate")
    @click.option(
        "--batch-size",
        default=phone_keys.DEFAULT_BATCH_SIZE,
        show_default=True,
        type=click.IntRange(min=1),
        help="members per transaction",
    )
    def rotate(batch_size: int) -> None:
        """Re-encrypt every member's phone that is not under the current key (the first of
        PHONE_ENCRYPTION_KEYS), a batch per transaction. Safe to stop and run again: it carries on
        where it stopped, and once done changes nothing. Retire an old key only after this."""
        vault = extensions().phone_vault
        with transaction() as session:
            total = phone_keys.phones_to_rotate(session, vault)
        click.echo(f"{total} members' phones to re-encrypt under key {vault.current_key_id}")
        after_id, rotated, skipped = 0, 0, 0
        while total:
            try:
                batch = run_transaction(
                    partial(phone_keys.rotate_batch, vault=vault, after_id=after_id, batch_size=batch_size)
                )
            except PhoneKeyError as exc:
                raise click.ClickException(
                    f"{exc} (a member after {after_id}): configure it in PHONE_ENCRYPTION_KEYS and run again"
                ) from exc
            if batch.last_member_id is None:
                break
            after_id = batch.last_member_id
            rotated, skipped = rotated + batch.rotated, skipped + batch.skipped
            click.echo(f"  {rotated}/{total} re-encrypted (up to member {after_id})")
        changed = f", {skipped} left alone (changed meanwhile)" if skipped else ""
        click.echo(f"done: {rotated} re-encrypted under key {vault.current_key_id}{changed}")

    app.cli.add_command(group)
