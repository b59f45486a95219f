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
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

SERVER_USER = "fmlg-postgres"
# Copies of trees the server user cannot reach (readable_copy). Under /var/cache, not /var/tmp:
# only root can create entries there, so nobody else can plant binaries for root to run.
CACHE_HOME = Path("/var/cache/fastapi-ml-guide")


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


def tree_digest(base: Path, parts: tuple[str, ...]) -> str:
    """A short hash of the names and contents of the files under `base/part` (35 MB: about 0.1 s)."""
    digest = hashlib.sha256()
    for path in sorted(p for part in parts for p in (base / part).rglob("*")):
        if path.is_file() and not path.is_symlink():
            digest.update(f"{path.relative_to(base)}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def is_cached_copy(path: Path) -> bool:
    return CACHE_HOME in path.parents


# --8<-- [start:readable_copy]
def readable_copy(base: Path, parts: tuple[str, ...], prefix: str) -> Path:
    """A directory holding `base/part` as `part` for each part, root's and readable by everyone.

    For a clone the server user cannot enter (a mode-700 directory, /root): the binaries run from
    the copy, CACHE_HOME/<prefix>-<tree_digest>, made once (the same files in another clone reuse
    it). It is made in a temporary directory beside it and then renamed, so an interrupted copy
    is never taken for the cache.
    """
    target = CACHE_HOME / f"{prefix}-{tree_digest(base, parts)}"
    if target.is_dir():
        return target
    CACHE_HOME.mkdir(parents=True, exist_ok=True)
    CACHE_HOME.chmod(0o755)  # whatever root's umask: the server user must pass through
    for stale in CACHE_HOME.glob(f".{target.name}-*"):  # left by a crash an hour or more ago
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=CACHE_HOME))
    try:
        for part in parts:
            shutil.copytree(base / part, temp / part, symlinks=True)
        for path in [temp, *temp.rglob("*")]:  # the clone's umask may have made them private
            if not path.is_symlink():
                executable = path.is_dir() or path.stat().st_mode & 0o100
                path.chmod(0o755 if executable else 0o644)
        try:
            temp.rename(target)
        except OSError:
            if not target.is_dir():  # else another run made the same copy first
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return target


# --8<-- [end:readable_copy]
