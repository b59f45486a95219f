"""How long to wait before starting something again that stopped: the job worker's run after an
outage (example_app/jobs/worker.py), a worker process under `tasks.py serve`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Waits that double after each quick stop, up to `cap`; a run of `healthy` seconds or more
    starts over from `first`. A database down for minutes costs a few attempts, not thousands,
    and one that is back is used again within `cap` seconds."""

    first: float = 1.0
    cap: float = 30.0
    healthy: float = 60.0
    _next: float = field(init=False, default=0.0)

    def after(self, ran_for: float) -> float:
        """The wait before the next start, after a run that lasted `ran_for` seconds."""
        if ran_for >= self.healthy or not self._next:
            self._next = self.first
        wait, self._next = self._next, min(self._next * 2, self.cap)
        return wait
