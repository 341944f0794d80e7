# The project's verbs. `make run` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEPS   := $(VENV)/.deps-installed
# The console's browser assets, from the npm registry (versions pinned in package-lock.json), never a CDN.
VENDOR  := app/console/static/vendor
ASSETS  := $(VENDOR)/.installed
# Debian's Chromium, which the browser tests (tests/browser/) drive; never Playwright's own download.
CHROMIUM ?= /usr/bin/chromium

.PHONY: run serve test test-mariadb lint format seed migrate bench clean chromium screenshots

$(DEPS): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

$(ASSETS): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: the console renders without charts and live previews"; exit 0; }; \
	npm ci --no-audit --no-fund --ignore-scripts && mkdir -p $(VENDOR) && \
	cp node_modules/echarts/dist/echarts.min.js node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/ && touch $@

## run: migrate, seed a demo mall, start the WeChat/WeCom sandbox and the scheduler, serve the API on :5000
run: $(DEPS) $(ASSETS)
	$(BIN)/python scripts/dev_server.py

## serve: production mode: migrate, then gunicorn (gunicorn.conf.py) and the scheduler, SIGTERM forwarded to both
## (settings from the environment / .env; see README "Serving in production")
serve: $(DEPS)
	$(BIN)/python scripts/serve.py

## test: the whole suite (SQLite by default; set DATABASE_URL for MySQL/MariaDB)
test: $(DEPS) $(ASSETS) chromium
	$(BIN)/python -m pytest

## test-mariadb: the suite again on a fresh MariaDB database (what .ci/run does second)
test-mariadb: $(DEPS) $(ASSETS) chromium
	.ci/run --mariadb-only

# Installs Chromium with apt-get when it is missing and we can (root); otherwise the browser tests skip.
chromium:
	@test -x $(CHROMIUM) && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y --no-install-recommends chromium \
	    || { apt-get update && apt-get install -y --no-install-recommends chromium; } \
	    || echo "could not install chromium: the browser tests will be skipped"; \
	else echo "no $(CHROMIUM) and apt-get is not usable here: the browser tests will be skipped"; fi

## screenshots: the console's main pages with the demo mall, as PNGs in docs/screenshots/
screenshots: $(DEPS) $(ASSETS) chromium
	@fc-list :lang=zh family | grep -q . || { [ "$$(id -u)" = 0 ] && apt-get install -y fonts-noto-cjk; } \
	  || echo "no Chinese fonts (apt-get install fonts-noto-cjk): the text will render as boxes"
	$(BIN)/python scripts/screenshots.py

lint: $(DEPS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app miniprogram_api wecom scripts tests
	$(BIN)/mypy

format: $(DEPS)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format app miniprogram_api wecom scripts tests

## bench: every benchmark on MariaDB, then bench/REPORT.md (BENCH_ARGS=--quick: a smoke run; --full: + 10M members)
bench: $(DEPS)
	$(BIN)/python scripts/bench/all.py $(BENCH_ARGS)

migrate: $(DEPS)
	FLASK_APP=wsgi $(BIN)/flask db-upgrade

seed: migrate
	FLASK_APP=wsgi $(BIN)/flask seed-demo

clean:
	rm -rf $(VENV) instance/*.db instance/*.db-* node_modules app/console/static/vendor
