"""Run a local PostgreSQL server as an unprivileged user when we are root.

postgres refuses to run as root. When the suite or `tasks.py serve` runs as root (a container,
a CI machine), `devtools.postgres_provider` runs pg_ctl, and so the server, as the system user
`fmlg-postgres` (created on first use) through `setpriv`, and gives that user its directories.
For any other user every function here leaves things as they are.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import subprocess
from pathlib import Path

SERVER_USER = "fmlg-postgres"


def is_root() -> bool:
    return os.geteuid() == 0


def server_user() -> pwd.struct_passwd:
    """The unprivileged system user the server runs as when we are root (created once)."""
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVER_USER)


def as_server_user() -> list[str]:
    """The prefix that runs a command as the server user: `setpriv ... --` as root, else nothing."""
    if not is_root():
        return []
    user = server_user()
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]


def pg_ctl_as_server_user(run_dir: Path, pg_ctl: Path) -> Path:
    """A pg_ctl that drops privileges, so pytest-postgresql's executor can drive it as root.

    Not root: `pg_ctl` itself. Root: a wrapper script in `run_dir`.
    """
    if not is_root():
        return pg_ctl
    wrapper = run_dir / "pg_ctl"
    prefix = " ".join(as_server_user())
    wrapper.write_text(f'#!/bin/sh\ncd "{run_dir}" || exit 1\nexec {prefix} "{pg_ctl}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def prepare_dir(path: Path) -> None:
    """Create `path` for the server's files, owned by the server user when we are root."""
    path.mkdir(parents=True, exist_ok=True)
    if is_root():
        user = server_user()
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o755)


def server_user_can_enter(path: Path) -> bool:
    """Whether the server user may enter `path` (a clone under /root, mode 700, it may not)."""
    if not is_root():
        return True
    probe = subprocess.run([*as_server_user(), "test", "-x", str(path)], capture_output=True)
    return probe.returncode == 0


def server_dir(data_home: Path) -> Path:
    """Where a persistent server keeps its files: `data_home`, if the server user can reach it.

    Otherwise (a clone under /root) a directory under /var/tmp, named after `data_home`.
    """
    if server_user_can_enter(data_home.parent):
        return data_home
    digest = hashlib.sha256(str(data_home).encode()).hexdigest()[:10]
    return Path("/var/tmp") / f"fastapi-ml-guide-{digest}"
