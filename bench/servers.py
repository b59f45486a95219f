"""The benchmarks' servers: uvicorn in a process of its own, waited for, measured, stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from devtools.postgres_provider import free_port

ROOT = Path(__file__).resolve().parent.parent


class Uvicorn:
    """`python -m uvicorn <target>` on a free loopback port, with the environment given.

    `log`: a file for its output (else it goes to the bench's own); `output_to_log=False`
    keeps stdout (uvicorn's access log, when on) out of it.
    """

    def __init__(
        self,
        target: str,
        env: Mapping[str, str],
        *,
        args: Sequence[str] = ("--no-access-log",),
        workers: int = 1,
        log: Path | None = None,
        output_to_log: bool = True,
    ) -> None:
        self.base = f"http://127.0.0.1:{free_port()}"
        self.log = log
        cmd = [sys.executable, "-m", "uvicorn", *target.split(), "--port", self.base.rsplit(":", 1)[1]]
        cmd += ["--workers", str(workers), "--log-level", "warning", *args]
        environment = {**os.environ, **env}
        if log is None:
            self.process = subprocess.Popen(cmd, cwd=ROOT, env=environment)
        else:
            with log.open("w") as out:
                stdout = out if output_to_log else subprocess.DEVNULL
                self.process = subprocess.Popen(cmd, cwd=ROOT, env=environment, stdout=stdout, stderr=out)

    def wait_ready(self, path: str, what: str, timeout: float = 120) -> None:
        """Until GET `path` answers 200; one line (and the log's tail) if the server exits first
        or time runs out. The server is stopped then: nothing is left running."""
        deadline, answer = time.monotonic() + timeout, "no answer"
        while True:
            try:
                response = httpx.get(f"{self.base}{path}", timeout=5)
                if response.status_code == 200:
                    return
                answer = f"{response.status_code} {response.text[:300]}"
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:] if self.log and self.log.exists() else ""
                raise SystemExit(f"bench: {what} did not start ({answer})" + (f"\n{tail}" if tail else ""))
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU time used so far: the server's threads, and its worker or pool processes."""
        import psutil  # type: ignore[import-untyped]

        root = psutil.Process(self.process.pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                used = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += used.user + used.system
        return total

    def settle(self, timeout: float = 20, every: float = 0.2) -> None:
        """Wait until the server is idle: wrk exits with requests in flight, which still run."""
        deadline, last = time.monotonic() + timeout, self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(every)
            now = self.cpu_seconds()
            if now - last < every * 0.05:  # under 5 % of a core
                return
            last = now

    def rss(self) -> int:
        import psutil

        return int(psutil.Process(self.process.pid).memory_info().rss)

    def stop(self, timeout: float = 20) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
