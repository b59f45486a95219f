"""Build the app's container image (the repository's Dockerfile) where no registry is reachable.

`FROM debian:bookworm` would need Docker Hub. The base is made here instead, from Debian's own
packages: debootstrap writes a minimal Debian 12 root filesystem with python3, and
`docker import` turns it into an image. The pinned requirements are downloaded on the host as
wheels into the build context (build/wheels), so the app's `docker build` needs no network at
all: the tests rebuild it (`offline=True`) from what `python3 tasks.py app-image` prepared.
The images of PgBouncer and of the proxy (nginx) for deploy/compose.yaml are built on the same
base (their apt-get needs Debian's mirror, so only here, never in a test).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_TAG = "fastapi-ml-guide/debian:bookworm"
APP_TAG = "fastapi-ml-guide/app:latest"
PGBOUNCER_TAG = "fastapi-ml-guide/pgbouncer:latest"  # deploy/compose.yaml's
PROXY_TAG = "fastapi-ml-guide/proxy:latest"  # deploy/compose.yaml's
SIDE_IMAGES = {PGBOUNCER_TAG: "pgbouncer", PROXY_TAG: "proxy"}  # tag: folder of deploy/
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
WHEELS = ROOT / "build" / "wheels"


class ImageError(Exception):
    """A step of the build failed; the message is one line saying which and why."""


def _run(cmd: list[str], step: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise ImageError(f"{step} failed ({result.returncode}): {last[0][:300]}")
    return result  # type: ignore[no-any-return]


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def build_base(tag: str = BASE_TAG) -> None:
    """Debian 12 with python3, from debootstrap; skipped when the image exists already."""
    if image_exists(tag):
        return
    if shutil.which("debootstrap") is None:
        from devtools.test_tools import ensure_tools

        ensure_tools("debootstrap")
    with tempfile.TemporaryDirectory(prefix="fmlg-rootfs-") as rootfs:
        print(f"app-image: debootstrap of Debian 12 ({', '.join(PACKAGES)}) from {MIRROR}", file=sys.stderr)
        include = f"--include={','.join(PACKAGES)}"
        _run(["debootstrap", "--variant=minbase", include, "bookworm", rootfs, MIRROR], "debootstrap")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (Path(rootfs) / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        tar = subprocess.Popen(["tar", "-C", rootfs, "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        try:
            importing = ["docker", "import", "--change", 'CMD ["/bin/bash"]', "-", tag]
            _run(importing, "docker import", stdin=tar.stdout)
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait()


def download_wheels() -> None:
    """The pinned requirements as wheels for this platform and Python 3.11, into the context
    (once per version of requirements.txt: a stamp holds the hash it was made for)."""
    requirements = ROOT / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = WHEELS / ".requirements.sha256"
    if stamp.exists() and stamp.read_text() == digest:
        return
    if WHEELS.exists():
        shutil.rmtree(WHEELS)  # no wheel of an older pin left to be installed by mistake
    WHEELS.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", "3.11"]
    _run([*pip, "-r", str(requirements), "-d", str(WHEELS)], "pip download")
    stamp.write_text(digest)


def prepared() -> str | None:
    """Why an offline build cannot run here (one line), or None when it can."""
    if not image_exists(BASE_TAG):
        return f"no base image {BASE_TAG}"
    stamp = WHEELS / ".requirements.sha256"
    digest = hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        return "no wheels for the current requirements.txt in build/wheels"
    for tag in SIDE_IMAGES:
        if not image_exists(tag):
            return f"no image {tag}"
    return None


def build(tag: str = APP_TAG, offline: bool = False) -> str:
    """The base (once), the wheels, then `docker build` of the Dockerfile; returns the tag.

    `offline`: only the app's `docker build`, from the base and wheels made before (no network).
    """
    if offline:
        missing = prepared()
        if missing is not None:
            raise ImageError(f"{missing}: run python3 tasks.py app-image (python3 tasks.py test does)")
    else:
        build_base()
        download_wheels()
        for side, folder in SIDE_IMAGES.items():
            print(f"app-image: docker build -t {side} deploy/{folder}", file=sys.stderr)
            command = ["docker", "build", "--build-arg", f"BASE={BASE_TAG}", "-t", side]
            _run([*command, str(ROOT / "deploy" / folder)], f"docker build ({folder})")
    print(f"app-image: docker build -t {tag}", file=sys.stderr)
    _run(["docker", "build", "--build-arg", f"BASE={BASE_TAG}", "-t", tag, str(ROOT)], "docker build")
    return tag


if __name__ == "__main__":
    try:
        print(build())
    except ImageError as exc:
        sys.exit(f"app-image: {exc}")
