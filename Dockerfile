# The reference app's image: python3 of Debian 12, the pinned requirements, the app; run as a
# user without privileges, with a health check on readiness (models loaded, database answering).
# Build it with `python3 tasks.py app-image`: no registry is needed. The base is a Debian root
# filesystem made by debootstrap from Debian's packages (devtools/app_image.py), and the wheels
# are downloaded on the host into the build context, so the build itself needs no network.
ARG BASE=fastapi-ml-guide/debian:bookworm

# --- build: a virtual environment with the pinned requirements -----------------------------------
FROM ${BASE} AS build
COPY build/wheels /wheels
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall -y pip

# --- run: the environment and the app, nothing else ----------------------------------------------
FROM ${BASE}
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY alembic ./alembic
COPY example_app ./example_app
COPY deploy/entrypoint.sh /usr/local/bin/entrypoint
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=8000
USER app
EXPOSE 8000
# Readiness: "healthy" means the database answers at the schema's head and every model is loaded.
# Docker and compose restart nothing on it: they gate traffic and start order by it. A platform
# that restarts on a failed probe (Kubernetes' livenessProbe) points that one at /health/live.
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/api/v1/health/ready', timeout=2)"]
# `app` or `worker`, one process each; who restarts what is said in deploy/entrypoint.sh.
ENTRYPOINT ["entrypoint"]
CMD ["app"]
