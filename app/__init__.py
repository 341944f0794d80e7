"""MallMember: the membership backend of a shopping mall (会员中台)."""

from __future__ import annotations

import logging
import time

from flask import Flask, Request, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from app.config import INSTANCE_DIR, Config
from app.log_format import ACCESS_LOGGER, use_json_lines
from app.log_masking import install_log_masking
from app.request_ids import HEADER as REQUEST_ID_HEADER
from app.request_ids import accepted_request_id, bind_request_id, unbind_request_id

access_log = logging.getLogger(ACCESS_LOGGER)
# Probes and scrapes, every few seconds: their access lines only at DEBUG.
_QUIET_ENDPOINTS = frozenset({"healthz", "readyz", "metrics"})


def create_app(config: Config | None = None) -> Flask:
    """Build an app from `config` (or the environment); nothing connects before this."""
    from app.api import register_api
    from app.cli import register_commands
    from app.errors import register_error_handlers
    from app.extensions import init_extensions
    from app.health import register_health
    from app.idempotency import init_app as init_idempotency
    from app.metrics import register_metrics
    from app.request_limits import register_request_limits
    from app.url_converters import register_url_converters

    config = config or Config.from_env()
    INSTANCE_DIR.mkdir(exist_ok=True)
    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.update(config.flask_settings())
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.session_interface = _SessionOnlyWhenSent()
    _configure_logging(app, config)
    if config.TRUSTED_PROXY_COUNT:
        # Client address, scheme and host as the proxies saw them (throttles, /metrics' allow-list,
        # external URLs); never more hops than there are proxies, or clients could forge them.
        hops = config.TRUSTED_PROXY_COUNT
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    register_request_limits(app, config)

    init_extensions(app, config)
    register_url_converters(app)
    _register_request_observers(app)
    register_health(app)
    register_metrics(app)
    init_idempotency(app)
    register_api(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def _configure_logging(app: Flask, config: Config) -> None:
    if not app.debug and not app.testing and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if config.LOG_FORMAT == "json":
        use_json_lines()
    # Phones, tokens, openids and secrets never reach a log line, whoever logs and whatever handles it.
    install_log_masking(app.logger.name)


def _register_request_observers(app: Flask) -> None:
    """Each request gets an id (kept from X-Request-Id when sane, sent back in it), a latency sample
    by URL rule and status, and an access line."""
    from app.metrics import UNMATCHED, observe_request

    @app.before_request
    def start() -> None:
        g.request_started = time.perf_counter()
        g.request_id = accepted_request_id(request.headers.get(REQUEST_ID_HEADER))
        g.request_id_token = bind_request_id(g.request_id)

    @app.after_request
    def finish(response: Response) -> Response:
        started = g.pop("request_started", None)
        if started is None:  # a request that failed before `start` ran
            return response
        seconds = time.perf_counter() - started
        response.headers[REQUEST_ID_HEADER] = g.request_id
        endpoint = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        observe_request(endpoint, request.method, response.status_code, seconds)
        access_log.log(
            logging.DEBUG if request.endpoint in _QUIET_ENDPOINTS else logging.INFO,
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={"status": response.status_code, "duration_ms": round(seconds * 1000, 1)},
        )
        return response

    @app.teardown_request
    def forget(_error: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            unbind_request_id(token)


class _SessionOnlyWhenSent(SecureCookieSessionInterface):
    """Flask's signed-cookie session, minus building a signer for every API call that sends no
    session cookie (bearer-token clients never do)."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)
