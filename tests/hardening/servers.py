"""A PostgreSQL of a test's own, to freeze and to stop: the fault tests' database (HD04).

The suite's server is shared by every test; this one is started for the fault tests alone, from
the same local binaries `devtools.postgres_provider` runs (the pgserver wheel's, or the system's),
and the tests hold its processes by pid: SIGSTOP freezes it the way a stalled host or a paused
container does (connections stay open, nothing answers), `pg_ctl stop` takes it away.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from devtools.postgres_provider import find_pg_ctl, local_server
from devtools.privileges import as_server_user


@dataclass(frozen=True)
class DedicatedServer:
    url: str  # asyncpg URL of its database
    pg_ctl: Path
    data_dir: Path

    def conninfo(self, dbname: str | None = None) -> str:
        url = make_url(self.url)
        return f"host={url.host} port={url.port} user={url.username} dbname={dbname or url.database}"

    def postmaster_pid(self) -> int:
        # The first line of postmaster.pid (the server user's file; we may read it).
        return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])

    def processes(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, walwriter...)."""
        root = self.postmaster_pid()
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    status = (entry / "status").read_text()
                    ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
                    if int(ppid) == root:
                        children.append(int(entry.name))
        return [root, *children]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Every process of the server stopped (SIGSTOP) until the block ends, then resumed."""
        pids = self.processes()
        try:
            for pid in pids:
                # A backend may end between listing and stopping; one that is gone needs no freezing.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The server shut down (fast: sessions are ended) until the block ends, then started."""
        # postmaster.opts is the command line the server was started with; `start` reuses it.
        options = shlex.split((self.data_dir / "postmaster.opts").read_text())[1:]
        self._pg_ctl("stop", "-m", "fast")
        try:
            yield
        finally:
            self._pg_ctl("start", "-l", str(self.data_dir.parent / "restart.log"), "-o", shlex.join(options))

    def _pg_ctl(self, *args: str) -> None:
        command = [*as_server_user(), str(self.pg_ctl), "-D", str(self.data_dir), "-w", *args]
        subprocess.run(command, check=True, capture_output=True, timeout=60, cwd=self.data_dir.parent)


@contextlib.contextmanager
def dedicated_server(dbname: str = "faults") -> Iterator[DedicatedServer]:
    """A new local server (temporary data directory), stopped and deleted afterwards."""
    origin, pg_ctl = find_pg_ctl()
    with local_server(origin, pg_ctl, None, dbname) as server:
        probe = DedicatedServer(server.url, pg_ctl, Path())
        with psycopg.connect(probe.conninfo("postgres"), autocommit=True) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None
        yield DedicatedServer(server.url, pg_ctl, Path(row[0]))
