#!/bin/sh
# The image's one entry point: `app` (the default) migrates, then serves; `worker` runs a job
# worker. Every instance may migrate at start: an advisory lock in alembic/env.py lets one run
# `upgrade head` while the others wait, then find nothing to do (DP03). That lock belongs to a
# session, which PgBouncer's transaction pooling does not keep: behind it, give the server's
# own address in MIGRATION_DATABASE_URL.
#
# Who restarts what. Each role is the container's one process (exec): when it exits, the
# container stops, and what runs containers starts it again (compose's `restart:`, Kubernetes'
# restartPolicy). Inside, uvicorn starts a dead --workers process again itself, and the job
# worker outlives a database restart on its own (it takes jobs again, with backoff): neither
# exits for an outage, so a restart of the container means a crash, the OOM killer, or a stop.
set -eu
migrate() {
    DATABASE_URL="${MIGRATION_DATABASE_URL:-$DATABASE_URL}" alembic upgrade head
}
case "${1:-app}" in
    app)
        migrate
        # Whose X-Forwarded-For uvicorn believes: the reverse proxy's, named by its address in
        # FORWARDED_ALLOW_IPS, or no one's. Believed from anyone else, a client could name a new
        # address on every request and never meet the per-address login limit.
        if [ -n "${FORWARDED_ALLOW_IPS:-}" ]; then
            proxy="--forwarded-allow-ips=$FORWARDED_ALLOW_IPS"
        else
            proxy="--no-proxy-headers"
        fi
        exec uvicorn example_app.main:app --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
            --workers "${WEB_CONCURRENCY:-1}" --timeout-graceful-shutdown 30 \
            "$proxy" --no-server-header --log-config example_app/logging.json
        ;;
    worker)
        migrate
        exec python3 -m example_app.jobs.worker
        ;;
    *)
        exec "$@"
        ;;
esac
