#!/bin/sh
# The image's one entry point: `app` (the default) migrates, then serves; `worker` runs a job
# worker. Every instance may migrate at start: an advisory lock in alembic/env.py lets one run
# `upgrade head` while the others wait, then find nothing to do (DP03). That lock belongs to a
# session, which PgBouncer's transaction pooling does not keep: behind it, give the server's
# own address in MIGRATION_DATABASE_URL.
set -eu
migrate() {
    DATABASE_URL="${MIGRATION_DATABASE_URL:-$DATABASE_URL}" alembic upgrade head
}
case "${1:-app}" in
    app)
        migrate
        exec uvicorn example_app.main:app --host 0.0.0.0 --port "${PORT:-8000}" \
            --workers "${WEB_CONCURRENCY:-1}" --timeout-graceful-shutdown 30 \
            --log-config example_app/logging.json
        ;;
    worker)
        migrate
        exec python3 -m example_app.jobs.worker
        ;;
    *)
        exec "$@"
        ;;
esac
