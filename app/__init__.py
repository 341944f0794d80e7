"""MallMember: the membership backend of a shopping mall (会员中台)."""

from __future__ import annotations

import logging

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from app.config import INSTANCE_DIR, Config
from app.log_masking import install_log_masking


def create_app(config: Config | None = None) -> Flask:
    """Build an app from `config` (or the environment); nothing connects before this."""
    from app.api import register_api
    from app.cli import register_commands
    from app.errors import register_error_handlers
    from app.extensions import init_extensions
    from app.request_limits import register_request_limits

    config = config or Config.from_env()
    INSTANCE_DIR.mkdir(exist_ok=True)
    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.update(config.flask_settings())
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.session_interface = _SessionOnlyWhenSent()
    _configure_logging(app)
    register_request_limits(app, config)

    init_extensions(app, config)
    register_api(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def _configure_logging(app: Flask) -> None:
    if not app.debug and not app.testing and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Phones, tokens, openids and secrets never reach a log line, whoever logs and whatever handles it.
    install_log_masking(app.logger.name)


class _SessionOnlyWhenSent(SecureCookieSessionInterface):
    """Flask's signed-cookie session, minus building a signer for every API call that sends no
    session cookie (bearer-token clients never do)."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)
