"""Build a PostgreSQL 16 + pgvector image offline, from the ``pgserver`` wheel's binaries.

Where no image registry is reachable, ``docker pull pgvector/pgvector:pg16`` fails. This builds
a minimal root filesystem (the binaries, the shared libraries they link, ``dash`` as ``/bin/sh``
and an entrypoint that honours ``POSTGRES_USER/PASSWORD/DB`` like the official image) and
``docker import``s it under the default tag, so testcontainers finds it locally.
"""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from devtools.postgres_provider import DEFAULT_IMAGE

PREFIX = "/usr/local"  # pginstall's RUNPATH is $ORIGIN/../../../pgserver.libs: keep that shape
UID = GID = 999

ENTRYPOINT = """#!/bin/sh
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s' "$POSTGRES_PASSWORD" | initdb -D "$PGDATA" -U "$user" --pwfile=/dev/stdin \\
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != "postgres" ]; then
        pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
        psql -v ON_ERROR_STOP=1 -U "$user" -d postgres -c "CREATE DATABASE \\"$db\\""
        pg_ctl -D "$PGDATA" -m fast -w stop
    fi
fi
exec postgres -D "$PGDATA" "$@"
"""


def _elf_dependencies(paths: list[Path]) -> set[Path]:
    libs: set[Path] = set()
    for path in paths:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
        for match in re.finditer(r"(/\S+\.so[^\s]*)", out):
            lib = Path(match.group(1))
            if lib.exists() and "pgserver" not in str(lib):
                libs.add(lib)
    return libs


def _is_elf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


def build_rootfs(out: io.BufferedIOBase) -> None:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise SystemExit("the pgserver package is not installed (it is a dev dependency)")
    pkg = Path(spec.origin).parent
    site = pkg.parent
    elves = [p for p in (pkg / "pginstall").rglob("*") if p.is_file() and _is_elf(p)]
    dash = Path("/usr/bin/dash")
    libs = _elf_dependencies([*elves, dash])

    with tarfile.open(fileobj=out, mode="w|") as tar:

        def add_dir(name: str, mode: int = 0o755, owner: int = 0) -> None:
            info = tarfile.TarInfo(name.lstrip("/"))
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, owner, owner
            tar.addfile(info)

        def add_bytes(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        def add_path(src: Path, name: str) -> None:
            tar.add(str(src), arcname=name.lstrip("/"), filter=_root_owned)

        for d in ("/bin", "/etc", "/lib", "/lib64", "/usr", "/usr/local", "/var", "/var/lib", "/var/run"):
            add_dir(d)
        add_dir("/tmp", 0o1777)
        add_dir("/var/run/postgresql", 0o775, UID)
        add_dir("/var/lib/postgresql", 0o755, UID)
        add_dir("/var/lib/postgresql/data", 0o700, UID)
        add_path(dash, "/bin/sh")
        for lib in sorted(libs):
            add_path(lib.resolve(), str(lib))
        add_path(pkg / "pginstall", f"{PREFIX}/pgserver/pginstall")
        add_path(site / "pgserver.libs", f"{PREFIX}/pgserver.libs")
        add_bytes(
            "/etc/passwd",
            f"root:x:0:0:root:/root:/bin/sh\npostgres:x:{UID}:{GID}::/var/lib/postgresql:/bin/sh\n".encode(),
        )
        add_bytes("/etc/group", f"root:x:0:\npostgres:x:{GID}:\n".encode())
        add_bytes("/docker-entrypoint.sh", ENTRYPOINT.encode(), 0o755)


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build(tag: str = DEFAULT_IMAGE) -> None:
    changes = [
        'ENTRYPOINT ["/docker-entrypoint.sh"]',
        f"ENV PATH={PREFIX}/pgserver/pginstall/bin:/bin",
        "ENV PGDATA=/var/lib/postgresql/data",
        "USER postgres",
        "EXPOSE 5432",
    ]
    cmd = ["docker", "import", *(arg for c in changes for arg in ("--change", c)), "-", tag]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    build_rootfs(proc.stdin)  # type: ignore[arg-type]
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit(f"docker import failed with exit code {proc.returncode}")
    print(f"built {tag} from the pgserver wheel's PostgreSQL", file=sys.stderr)


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_IMAGE)
