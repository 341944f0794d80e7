"""Console pages for store POS terminals (POS 终端): the list, creating a terminal, rotating its key and
deactivating it. The roles are the admin API's: admins manage terminals, auditors read the list, and
other roles are refused (a terminal's key signs sales for its store).

A terminal's signing secret is shown once, on the page that answers the create or rotate POST (never
in a URL, never cached); it is not stored and cannot be shown again. Every change goes through
`app.services.pos`, the same calls the admin API makes, which also write the audit rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.console.forms import explained, form_status, form_values, load_form
from app.console.pages import bp, console_operator, console_page
from app.console.pos_terminal_schemas import PosTerminalIn
from app.db import transaction
from app.errors import DomainError, ValidationFailed
from app.extensions import extensions, mall_time
from app.models import OperatorRole
from app.services import pos, stores

ADMIN, AUDITOR = OperatorRole.ADMIN, OperatorRole.AUDITOR
TERMINAL_LABELS = {"store_id": "所属门店", "name": "终端名称"}
# The secret must not outlive the page: not in the browser's cache, not in a proxy's.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@bp.get("/pos-terminals", endpoint="pos_terminals")
@console_page(ADMIN, AUDITOR)
def terminals_list() -> str:
    store_id = _store_filter(request.args.get("store_id"))
    with transaction() as session:
        rows = pos.list_terminals(session, store_id=store_id)
        store_choices = stores.list_stores(session)
    return render_template(
        "console/pos_terminals.html",
        rows=rows,
        stores=store_choices,
        store_names={store.id: store.name for store in store_choices},
        chosen_store=store_id,
        can_manage=console_operator().role == ADMIN,
        deactivated=request.args.get("deactivated"),
    )


@bp.route("/pos-terminals/new", methods=["GET", "POST"])
@console_page(ADMIN)
def terminal_new() -> tuple[str, int, Mapping[str, str]] | str | tuple[str, int]:
    if request.method == "GET":
        return _terminal_form({"store_id": request.args.get("store_id", "")})
    try:
        args = load_form(
            PosTerminalIn(),
            form_values(request.form, TERMINAL_LABELS, integers=("store_id",)),
            labels=TERMINAL_LABELS,
        )
        with transaction() as session:
            issued = pos.create_terminal(
                session,
                extensions().pos_keyring,
                store_id=args["store_id"],
                name=args["name"],
                operator_id=console_operator().id,
                at=mall_time().now,
                client_ip=request.remote_addr,
            )
            page = _secret_page(session, issued, created=True)
    except DomainError as error:
        return _terminal_form(request.form, error)
    return page, 200, NO_STORE


@bp.post("/pos-terminals/<int:terminal_id>/key-rotation")
@console_page(ADMIN)
def terminal_rotate_key(terminal_id: int) -> tuple[str, int, Mapping[str, str]]:
    with transaction() as session:
        issued = pos.rotate_key(
            session,
            extensions().pos_keyring,
            terminal_id,
            operator_id=console_operator().id,
            at=mall_time().now,
            client_ip=request.remote_addr,
        )
        page = _secret_page(session, issued, created=False)
    return page, 200, NO_STORE


@bp.post("/pos-terminals/<int:terminal_id>/deactivation")
@console_page(ADMIN)
def terminal_deactivate(terminal_id: int) -> Response:
    with transaction() as session:
        terminal = pos.deactivate_terminal(
            session, terminal_id, operator_id=console_operator().id, client_ip=request.remote_addr
        )
        name = terminal.name
    return redirect(url_for("console.pos_terminals", deactivated=name))


def _store_filter(raw: str | None) -> int | None:
    text = (raw or "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValidationFailed("筛选条件有误")
    return int(text)


def _secret_page(session: Session, issued: pos.IssuedKey, *, created: bool) -> str:
    terminal = issued.terminal
    store = stores.get_store(session, terminal.store_id)
    return render_template(
        "console/pos_terminal_secret.html",
        terminal=terminal,
        store=store,
        secret=issued.secret,
        created=created,
    )


def _terminal_form(values: Mapping[str, Any], error: DomainError | None = None) -> str | tuple[str, int]:
    with transaction() as session:
        store_choices = stores.list_stores(session)
    page = render_template(
        "console/pos_terminal_form.html",
        values=values,
        stores=store_choices,
        error=explained(error, TERMINAL_LABELS) if error else None,
    )
    return (page, form_status(error)) if error else page
