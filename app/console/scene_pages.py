"""Console page: QR scenes (注册二维码) — the codes that bring shoppers to sign up, with how many
signed up through each; creating store, advisor, event and poster codes; downloading a code's PNG.
A store manager sees and creates their own store's codes only."""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from app.console.forms import (
    FormInvalid,
    explained,
    form_status,
    form_values,
    format_mall_datetime,
    load_form,
    page_number,
)
from app.console.org_pages import managed_store_id
from app.console.pages import audit_console_action, bp, console_operator, console_page
from app.console.schemas import QrSceneIn
from app.db import transaction
from app.errors import DomainError, Forbidden, ValidationFailed
from app.extensions import extensions
from app.models import OperatorRole, QrScene, SceneKind
from app.services import advisors, scenes, staff, stores

ADMIN, MARKETING = OperatorRole.ADMIN, OperatorRole.MARKETING
STORE_MANAGER, AUDITOR = OperatorRole.STORE_MANAGER, OperatorRole.AUDITOR
PER_PAGE = 30

KIND_LABELS = {
    SceneKind.STORE: "门店码",
    SceneKind.ADVISOR: "导购码",
    SceneKind.EVENT: "活动码",
    SceneKind.POSTER: "海报码",
    SceneKind.REFERRAL: "推荐码",
}
# Referral codes are made by members sharing from the mini-program, not by operators.
CONSOLE_KINDS = (SceneKind.STORE, SceneKind.ADVISOR, SceneKind.EVENT, SceneKind.POSTER)
SCENE_LABELS = {"kind": "类型", "name": "名称", "store_id": "门店", "advisor_userid": "导购"}


class OtherStoreScene(Forbidden):
    code, message = "OTHER_STORE_FORBIDDEN", "店长只能查看和创建本门店的二维码"


@bp.get("/scenes", endpoint="scenes")
@console_page(ADMIN, MARKETING, STORE_MANAGER, AUDITOR)
def scenes_list() -> str | tuple[str, int]:
    return _render_list(error=None, values={})


@bp.post("/scenes")
@console_page(ADMIN, MARKETING, STORE_MANAGER)
def scene_create() -> BaseResponse | str | tuple[str, int]:
    own_store = managed_store_id(console_operator())
    values = form_values(request.form, SCENE_LABELS, integers=("store_id",))
    if own_store is not None:
        values["store_id"] = own_store  # a store manager's codes are their store's
    try:
        args = load_form(QrSceneIn(), values, labels=SCENE_LABELS)
        if args["kind"] not in CONSOLE_KINDS:
            raise FormInvalid(
                {"kind": "推荐码由会员在小程序内分享生成，不能在后台创建"},
                "类型：推荐码由会员在小程序内分享生成，不能在后台创建",
            )
        with transaction() as session:
            scene = scenes.create_scene(session, scenes.NewScene(**args), operator_id=console_operator().id)
            advisor_id = scene.advisor_id
            if (
                own_store is not None
                and advisor_id
                and staff.get_staff(session, advisor_id).store_id != own_store
            ):
                raise ValidationFailed("导购：只能选择本门店的导购")
            detail = {"kind": scene.kind.value, "name": scene.name, "store_id": scene.store_id}
            detail["advisor_id"] = scene.advisor_id
            audit_console_action(session, "qr_scene.create", "qr_scene", scene.id, detail)
    except DomainError as error:
        return _render_list(error=error, values=request.form)
    return redirect(url_for("console.scenes", created=scene.id))


@bp.get("/scenes/<int:scene_id>/image")
@console_page(ADMIN, MARKETING, STORE_MANAGER, AUDITOR)
def scene_image(scene_id: int) -> Response:
    own_store = managed_store_id(console_operator())
    with transaction() as session:
        scene = scenes.get_scene(session, scene_id)
    if own_store is not None and scene.store_id != own_store:
        raise OtherStoreScene()
    ext = extensions()
    image = scenes.signup_code_png(ext.wechat, scene, ext.config.WECHAT_SIGNUP_PAGE)
    response = Response(image, mimetype="image/png")
    response.headers["Content-Disposition"] = f'attachment; filename="qr-scene-{scene.id}.png"'
    return response


def _render_list(error: DomainError | None, values: Any) -> str | tuple[str, int]:
    own_store = managed_store_id(console_operator())
    page = page_number(request.args.get("page"))
    with transaction() as session:
        rows = scenes.list_scenes(session, offset=(page - 1) * PER_PAGE, limit=PER_PAGE, store_id=own_store)
        total = scenes.count_scenes(session, store_id=own_store)
        signups = scenes.signup_counts(session, [scene.id for scene in rows])
        store_names = {store.id: store.name for store in stores.list_stores(session, store_id=own_store)}
        advisor_choices = [
            person for person in advisors.list_advisors(session, store_id=own_store) if person.is_active
        ]
    advisor_names = {person.id: person.name for person in advisor_choices}
    html = render_template(
        "console/scenes.html",
        rows=[_line(scene, signups, store_names, advisor_names) for scene in rows],
        page=page,
        pages=max(1, -(-total // PER_PAGE)),
        total=total,
        stores=store_names,
        store_locked=own_store is not None,
        advisors=advisor_choices,
        kinds={kind: KIND_LABELS[kind] for kind in CONSOLE_KINDS},
        can_create=console_operator().role in (ADMIN, MARKETING, STORE_MANAGER),
        created=request.args.get("created"),
        values=values,
        error=explained(error, SCENE_LABELS) if error else None,
    )
    return (html, form_status(error)) if error else html


def _line(
    scene: QrScene,
    signups: dict[int, int],
    store_names: dict[int, str],
    advisor_names: dict[int, str],
) -> dict[str, Any]:
    return {
        "id": scene.id,
        "kind": KIND_LABELS[scene.kind],
        "name": scene.name,
        "scene": scene.scene,
        "store": store_names.get(scene.store_id, "—") if scene.store_id else "—",
        "advisor": advisor_names.get(scene.advisor_id, f"#{scene.advisor_id}") if scene.advisor_id else "—",
        "signups": signups.get(scene.id, 0),
        "created_at": format_mall_datetime(scene.created_at),
    }
