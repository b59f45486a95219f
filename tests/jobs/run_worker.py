"""A test worker: the app's worker (example_app/jobs/worker.py) with the tests' tasks added."""

from __future__ import annotations

from example_app.jobs.queue import queue
from example_app.jobs.worker import main
from tests.jobs.worker_tasks import blueprint

if __name__ == "__main__":
    queue.add_tasks_from(blueprint, namespace="test")
    main()
