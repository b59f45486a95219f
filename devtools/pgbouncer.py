"""PgBouncer (Debian's `pgbouncer` package) in transaction pooling mode, in front of a server.

`pgbouncer(server_url)` runs one on a free loopback port for as long as the `with` lasts and
gives the URL to use instead: the same user, password and database, through the pooler.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from devtools.postgres_provider import free_port

PGBOUNCER = "/usr/sbin/pgbouncer"


class PgBouncerError(RuntimeError):
    pass


# --8<-- [start:ini]
def config(server_url: str, port: int, pool_size: int, logfile: Path) -> str:
    server = make_url(server_url)
    return f"""\
[databases]
* = host={server.host or "127.0.0.1"} port={server.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {logfile.parent / "userlist.txt"}
logfile = {logfile}
; A server connection serves one client transaction, then the next client's.
pool_mode = transaction
; Server connections per database and user: what PostgreSQL sees, whatever the clients.
default_pool_size = {pool_size}
max_db_connections = {pool_size}
max_client_conn = 2000
; May read its console (SHOW POOLS, SHOW SERVERS): the tests count server connections there.
stats_users = {server.username}
; asyncpg sends these at connect; PgBouncer cannot keep per-client settings on shared server
; connections, so it drops them (statement_timeout: set it on the role or database instead).
ignore_startup_parameters = extra_float_digits, statement_timeout
server_reset_query =
"""


# --8<-- [end:ini]


@contextlib.contextmanager
def pgbouncer(server_url: str, pool_size: int = 20) -> Iterator[str]:
    """PgBouncer in front of `server_url` (asyncpg URL); yields the URL through it."""
    if shutil.which(PGBOUNCER) is None:
        raise PgBouncerError("pgbouncer is not installed; run: sudo apt-get install pgbouncer")
    server = make_url(server_url)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # read by the unprivileged user it runs as, when started by root
        log = folder / "pgbouncer.log"
        (folder / "userlist.txt").write_text(f'"{server.username}" "{server.password or ""}"\n')
        ini = folder / "pgbouncer.ini"
        ini.write_text(config(server_url, port, pool_size, log))
        log.touch()
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            shutil.chown(log, "nobody")
        as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
        process = subprocess.Popen(
            [PGBOUNCER, *as_user, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise PgBouncerError(f"pgbouncer did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
            yield server.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        finally:
            process.terminate()
            process.wait(timeout=20)
