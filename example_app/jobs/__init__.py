"""Background jobs (ML07) on PostgreSQL, with procrastinate: the queue, the tasks, the worker."""
