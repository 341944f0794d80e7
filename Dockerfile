# MallMember API and scheduler image. One image, two commands (docker-compose.yml):
#   app:       python scripts/serve.py --no-scheduler --no-migrate   (gunicorn, gunicorn.conf.py)
#   scheduler: flask --app wsgi scheduler
#   migrate:   python scripts/serve.py --migrate-only                (one-shot, before new workers start)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_ENV=production \
    PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/mallmember-metrics

WORKDIR /srv/mallmember

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
# Bytecode written once here: the tree is read-only at run time, and every process (each gunicorn worker,
# each scheduled command) would otherwise compile the app's modules when it starts (~0.3 s).
RUN python -m compileall -q app miniprogram_api wecom migrations wsgi.py

# Never root: a compromised worker gets an unprivileged account and a read-only tree.
RUN useradd --system --uid 10001 --home-dir /srv/mallmember --shell /usr/sbin/nologin mallmember \
    && mkdir -p instance/imports \
    && chown -R mallmember:mallmember instance
USER mallmember

EXPOSE 8000
CMD ["python", "scripts/serve.py", "--no-scheduler", "--no-migrate"]
