"""The app exactly as `gunicorn wsgi:app` serves it, plus `GET /bench/ping`, for benchmarks only.

`/bench/ping` is the cheapest request this app can answer (a plain Flask route returning a small JSON
body, through the same gunicorn workers, middleware and error handlers): home.py measures the shopper
home screen against it. It lives here, not in the app, so no deployment ever serves it.
"""

from __future__ import annotations

from wsgi import app


@app.get("/bench/ping")
def bench_ping() -> dict[str, bool]:
    return {"ok": True}
