"""What every benchmark shares: the database, servers, load, probes, percentiles and the record.

A scenario is one short file: its variants (apps made by the app's factory, with settings of
their own as environment variables), its loads (wrk) and its report; bench/scale_out.py is one.
"""

from __future__ import annotations

import http.client
import inspect
import json
import os
import re
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil  # type: ignore[import-untyped]
import psycopg

from devtools.postgres_provider import free_port, provide

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PREFIX = "/api/v1"
APP = "example_app.main:create_app"  # the app's factory: every app variant is made by it


# --- the database -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    url: str  # asyncpg form, as the app's DATABASE_URL
    postgres: str  # "PostgreSQL 16.2, fsync off"
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))  # the run's servers share it

    @property
    def conninfo(self) -> str:
        return self.url.replace("postgresql+asyncpg://", "postgresql://", 1)

    def sql(self, *statements: str, params: Mapping[str, Any] | None = None) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement, params)

    def row(self, query: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            row = conn.execute(query, params).fetchone()
        if row is None:
            raise LookupError(query)
        return row

    def value(self, query: str, params: Sequence[Any] = ()) -> Any:
        return self.row(query, params)[0]

    def env(self, **more: str) -> dict[str, str]:
        """What a served app needs: its database and its key (the bench signs tokens with it too)."""
        return {"DATABASE_URL": self.url, "SECRET_KEY": self.secret_key, **more}

    def settings(self) -> Any:
        from example_app.core.config import load_settings

        return load_settings(**self.env())


def migrate(url: str) -> None:
    from alembic.config import Config

    from alembic import command

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes.update(database_url=url, configure_logger=False)
    command.upgrade(cfg, "head")


@contextmanager
def database() -> Iterator[Database]:
    """A scratch database (BENCH_DATABASE_URL, else a throwaway server), migrated by Alembic."""
    with provide("BENCH_DATABASE_URL", dbname="bench") as server:
        print(f"PostgreSQL: {server.description}", file=sys.stderr)
        migrate(server.url)
        db = Database(server.url, describe(server.url))
        db.sql("TRUNCATE users, posts, predictions RESTART IDENTITY CASCADE")  # BENCH_DATABASE_URL's too
        yield db


def describe(url: str) -> str:
    """The server, as a record's header names it: "PostgreSQL 16.2, fsync off"."""
    probe = Database(url, "")
    return (
        f"PostgreSQL {str(probe.value('SHOW server_version')).split()[0]}, fsync {probe.value('SHOW fsync')}"
    )


def seed_posts(db: Database, users: int, posts: int) -> None:
    """`users` users and `posts` posts as the app holds them (bodies, tags, embeddings); user u
    writes post u - 1, user 1 the last."""
    from example_app.ml.embedding import DIMENSIONS

    db.sql(
        "INSERT INTO users (email, hashed_password, name) SELECT 'bench' || g || '@example.com', "
        f"'$argon2id$not-a-real-hash', 'Bench ' || g FROM generate_series(1, {users}) g",
        "INSERT INTO posts (title, slug, body, author_id, tags, embedding) "
        "SELECT 'Post number ' || g, 'post-number-' || g, repeat('Some words of a post body. ', 20), "
        f'1 + g % {users}, \'["bench", "hot path"]\'::jsonb, '
        f"e.v FROM generate_series(1, {posts}) g, LATERAL (SELECT array_agg(random())::vector AS v "
        f"FROM generate_series(1, {DIMENSIONS}) WHERE g > 0) e",
        "ANALYZE users, posts",
    )


def bearer(db: Database, user_ids: Sequence[int]) -> list[str]:
    """`Bearer <token>` for each user, signed with the run's key, for as long as the app signs them."""
    from example_app.core.security import create_access_token

    settings = db.settings()
    return [f"Bearer {create_access_token(settings, u)}" for u in user_ids]


# --- servers ------------------------------------------------------------------------------------


class Server:
    """`uvicorn --factory <target>` on a free loopback port, with `env` on top of this process's.

    Stopped by its PID (SIGTERM, then SIGKILL); its output goes to a file whose tail is shown if
    it does not start."""

    def __init__(
        self,
        env: Mapping[str, str],
        target: str = APP,
        *,
        args: Sequence[str] = ("--no-access-log",),
        workers: int = 1,
        ready: str = f"{PREFIX}/health",
        cpus: frozenset[int] | None = None,
    ) -> None:
        self.base, self.ready = f"http://127.0.0.1:{free_port()}", ready
        self.log = Path(tempfile.mkstemp(prefix="bench-server-", suffix=".log")[1])
        cmd = [sys.executable, "-m", "uvicorn", "--factory", target, "--port", self.base.rsplit(":", 1)[1]]
        cmd += ["--workers", str(workers), "--log-level", "warning", *args]
        with self.log.open("w") as out:
            stdout = subprocess.DEVNULL if "--no-access-log" not in args else out  # an access log: dropped
            environment = {**os.environ, "WEB_CONCURRENCY": str(workers), **env}
            self.process = subprocess.Popen(
                cmd, cwd=ROOT, env=environment, stdout=stdout, stderr=out, preexec_fn=pinned(cpus)
            )

    def wait_ready(self, timeout: float = 180) -> Server:
        """Until GET `ready` answers 200; else stop it and say why (with the log's tail)."""
        deadline, answer = time.monotonic() + timeout, "no answer"
        while True:
            try:
                response = httpx.get(f"{self.base}{self.ready}", timeout=5)
                if response.status_code == 200:
                    return self
                answer = f"{response.status_code} {response.text[:300]}"
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise SystemExit(f"bench: the server did not start ({answer})\n{tail}")
            time.sleep(0.1)

    def _processes(self) -> list[Any]:
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server's threads and its worker or pool processes."""
        total = 0.0
        for process in self._processes():
            try:
                used = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += used.user + used.system
        return total

    def rss(self) -> int:
        return int(self._processes()[0].memory_info().rss)

    def settle(self, timeout: float = 20, every: float = 0.2) -> None:
        """Until the server is idle: wrk exits with requests in flight, which still run."""
        deadline, last = time.monotonic() + timeout, self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(every)
            if (now := self.cpu_seconds()) - last < every * 0.05:  # under 5 % of a core
                return
            last = now

    def stop(self, timeout: float = 40) -> None:
        """SIGTERM, then SIGKILL; then any process it started and left behind (a pool's worker)."""
        if self.process.poll() is None:
            children = self._processes()[1:]
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            for child in psutil.wait_procs(children, timeout=5)[1]:  # still alive after 5 s
                print(f"bench: the server left process {child.pid} behind: stopped", file=sys.stderr)
                child.kill()
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> Server:
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- load ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What wrk sends: `lua` defines `request` (else wrk GETs `path`), with `headers` on each."""

    label: str
    path: str = "/"
    lua: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: bool = False  # a polite client: after a 503, wait as long as Retry-After says


def get(label: str, path: str, **headers: str) -> Load:
    """GETs of a path that Lua builds for each request, e.g. `'"/posts/" .. math.random(1, 9)'`."""
    return Load(label, lua=f'request = function()\n  return wrk.format("GET", {path})\nend', headers=headers)


def post(label: str, path: str, bodies: Iterable[Any], token: str) -> Load:
    """POSTs of the JSON `bodies` in turn, as a polite client (a 503's Retry-After is waited out)."""
    items = ",\n".join(f"[==[{json.dumps(body)}]==]" for body in bodies)  # long brackets: JSON as is
    lua = f"local bodies = {{\n{items}\n}}\nlocal n = 0\nrequest = function()\n  n = n % #bodies + 1\n"
    lua += f'  return wrk.format("POST", "{path}", nil, bodies[n])\nend'
    headers = {"Content-Type": "application/json", "Authorization": token}
    return Load(label, lua=lua, headers=headers, retry_after=True)


# Every run counts the 503s (load shed, with Retry-After) apart from other failures.
COUNT_SHED = """
shed = 0
local wait_ms, threads = 0, {}
setup = function(thread) table.insert(threads, thread) end
response = function(status, headers, body)
  if status == 503 then
    shed = shed + 1
    if POLITE then wait_ms = 1000 * (tonumber(headers["retry-after"] or headers["Retry-After"]) or 1) end
  end
end
if POLITE then delay = function() local ms = wait_ms; wait_ms = 0; return ms end end
done = function(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("shed") end
  io.write(string.format("Shed (503): %d\\n", total))
end
"""


@dataclass(frozen=True)
class WrkRun:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers but the shed, and socket errors (timeouts included)
    shed: int  # 503 + Retry-After

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok_per_s(self) -> float:
        return max(self.requests - self.errors - self.shed, 0) / self.seconds if self.seconds else 0.0


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(output: str) -> WrkRun:
    """wrk --latency's output, with the shed line COUNT_SHED adds."""
    done = re.search(r"(\d+) requests in ([\d.]+(?:us|ms|s|m))", output)
    p50, p99 = re.search(r"\s50%\s+(\S+)", output), re.search(r"\s99%\s+(\S+)", output)
    if done is None or p50 is None or p99 is None:
        raise ValueError(f"not wrk --latency output: {output[:300]!r}")
    shed_line = re.search(r"Shed \(503\): (\d+)", output)
    shed = int(shed_line[1]) if shed_line else 0
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output)) - shed
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return WrkRun(int(done[1]), _ms(done[2]) / 1000, _ms(p50[1]), _ms(p99[1]), errors, shed)


def pinned(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    """For Popen: the child runs on `cpus` only (None: wherever the kernel puts it)."""
    return None if cpus is None else lambda: os.sched_setaffinity(0, cpus)


def split_cpus() -> tuple[frozenset[int], frozenset[int]] | None:
    """The server's core and the rest (wrk's; PostgreSQL goes where the kernel finds room): on a
    small machine a 5 % difference is smaller than what wrk and the server take from each other."""
    cpus = sorted(os.sched_getaffinity(0))
    return (frozenset(cpus[-1:]), frozenset(cpus[:-1])) if len(cpus) >= 2 else None


def wrk(
    base: str,
    load: Load,
    connections: int,
    seconds: int,
    threads: int = 1,
    cpus: frozenset[int] | None = None,
) -> WrkRun:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(f"POLITE = {str(load.retry_after).lower()}\n{load.lua}\n{COUNT_SHED}")
        script.flush()
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
        cmd += [x for k, v in load.headers.items() for x in ("-H", f"{k}: {v}")]
        done = subprocess.run(
            [*cmd, "-s", script.name, base + load.path],
            capture_output=True,
            text=True,
            preexec_fn=pinned(cpus),
        )
    if done.returncode != 0:
        raise SystemExit(f"bench: wrk failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return parse_wrk(done.stdout)


def lua_table(values: Sequence[Any]) -> str:
    return "{" + ", ".join(json.dumps(v) for v in values) + "}"


# --- timing: calls, and one client's cheap request --------------------------------------------------


def timed(call: Callable[[], object], repeats: int = 1, warmup: int = 0) -> list[float]:
    """The seconds each of `repeats` calls took, after `warmup` calls that are not kept."""
    found = []
    for _ in range(warmup + repeats):
        started = time.perf_counter()
        call()
        found.append(time.perf_counter() - started)
    return found[warmup:]


async def timed_async(
    call: Callable[[], Awaitable[object]], repeats: int = 1, warmup: int = 0
) -> list[float]:
    """`timed`, for a coroutine function."""
    found = []
    for _ in range(warmup + repeats):
        started = time.perf_counter()
        await call()
        found.append(time.perf_counter() - started)
    return found[warmup:]


def wait_until(done: Callable[[], bool], timeout: float, what: str, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: waited {timeout:g} s for {what}, in vain")
        time.sleep(every)


def percentile(samples: Sequence[float], p: float) -> float:
    if len(samples) < 2:
        return samples[0] if samples else 0.0
    return statistics.quantiles(samples, n=100, method="inclusive")[round(p) - 1]


class Probe(threading.Thread):
    """GET `path` on one keep-alive connection, `every_ms` after each answer; every latency kept."""

    def __init__(self, base: str, path: str, every_ms: float = 10) -> None:
        super().__init__(daemon=True)
        self.address, self.path, self.every = urlsplit(base), path, every_ms / 1000
        self.latencies_ms: list[float] = []
        self.errors = 0
        self._done = threading.Event()

    def run(self) -> None:
        connection = None
        while not self._done.wait(self.every):
            if connection is None:
                connection = http.client.HTTPConnection(
                    self.address.hostname or "", self.address.port, timeout=30
                )
            started = time.perf_counter()
            try:
                connection.request("GET", self.path)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                connection.close()
                connection = None
                continue
            if response.status == 200:
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                self.errors += 1
        if connection is not None:
            connection.close()

    def __enter__(self) -> Probe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join()


# --- N variants side by side --------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """An app to serve: `target`'s factory with `env` on top of the run's (settings, and more)."""

    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    target: str = APP
    args: tuple[str, ...] = ("--no-access-log",)
    workers: int = 1
    loads: tuple[str, ...] | None = None  # which of the run's loads (None: all)
    ready: str = f"{PREFIX}/health"


@dataclass
class Measure:
    variant: str
    load: str
    requests_per_s: float  # answered, mean of the rounds
    ok_per_s: float  # answered 2xx
    p50_ms: float  # median of the rounds
    p99_ms: float
    errors: int
    shed: int
    cpu_ms: float  # the server's CPU time per request (all its threads and processes)
    probe_p50_ms: float | None = None  # the probe's cheap request meanwhile, over every round
    probe_p99_ms: float | None = None
    probe_n: int = 0


def compare(
    variants: Sequence[Variant],
    loads: Mapping[str, Load],
    env: Mapping[str, str],
    *,
    seconds: int,
    connections: int,
    rounds: int = 2,
    warmup: int = 2,
    probe: str | None = None,
    before: Callable[[], object] | None = None,
    check: Callable[[Variant, Server], object] | None = None,
    pin: bool = False,
) -> list[Measure]:
    """Each variant in turn, started for its turn and stopped after it (their pools never add up),
    every load `seconds` long, the order reversing every round: the machine's other load weighs
    on every variant alike. `probe`: a path one client GETs every 10 ms while each load runs.
    `before`: called before each measured load (e.g. to empty a table); `check`: on each server
    once, before its first load (e.g. that it answers as the app does); `pin`: each server on a
    core of its own, wrk on the others (split_cpus)."""
    server_cpus, wrk_cpus = (pin and split_cpus()) or (None, None)
    runs: dict[tuple[str, str], list[tuple[WrkRun, float]]] = {}
    probes: dict[tuple[str, str], list[float]] = {}
    for round_ in range(rounds):
        for variant in variants if round_ % 2 == 0 else variants[::-1]:
            server_env = {**env, **variant.env}
            with Server(
                server_env,
                variant.target,
                args=variant.args,
                workers=variant.workers,
                ready=variant.ready,
                cpus=server_cpus,
            ) as s:
                if check and round_ == 0:
                    check(variant, s)
                for key in variant.loads or loads:
                    load = loads[key]
                    if warmup:
                        wrk(s.base, load, connections, warmup, cpus=wrk_cpus)  # pool filled, code paths hot
                        s.settle()
                    if before:
                        before()
                    cpu, cheap = s.cpu_seconds(), Probe(s.base, probe) if probe else None
                    with cheap or nullcontext():
                        run = wrk(s.base, load, connections, seconds, cpus=wrk_cpus)
                    runs.setdefault((variant.name, key), []).append((run, s.cpu_seconds() - cpu))
                    probes.setdefault((variant.name, key), []).extend(cheap.latencies_ms if cheap else [])
                    s.settle()
                    print(
                        f"  {variant.name:32} {key:8} round {round_ + 1}: {run.per_s:8.0f} req/s "
                        f"p99 {run.p99_ms:7.1f} ms  errors {run.errors}  shed {run.shed}",
                        file=sys.stderr,
                    )
    measures = []
    for (name, key), done in runs.items():
        requests = sum(r.requests for r, _ in done)
        latencies = probes[(name, key)]
        measures.append(
            Measure(
                name,
                key,
                statistics.mean(r.per_s for r, _ in done),
                statistics.mean(r.ok_per_s for r, _ in done),
                statistics.median(r.p50_ms for r, _ in done),
                statistics.median(r.p99_ms for r, _ in done),
                sum(r.errors for r, _ in done),
                sum(r.shed for r, _ in done),
                sum(cpu for _, cpu in done) * 1000 / requests if requests else 0.0,
                percentile(latencies, 50) if probe else None,
                percentile(latencies, 99) if probe else None,
                len(latencies),
            )
        )
    return measures


def results(
    db: Database, measures: Sequence[Measure], loads: Mapping[str, Load], **more: Any
) -> dict[str, Any]:
    """A comparison's JSON: the database, each measure, the loads' labels, and what else is given."""
    labels = {key: load.label for key, load in loads.items()}
    return {"postgres": db.postgres, "measures": [asdict(m) for m in measures], "loads": labels, **more}


def measured(data: Mapping[str, Any]) -> list[Measure]:
    return [Measure(**m) for m in data["measures"]]


def columns(spec: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[str]:
    """Aligned lines: the titles, then one line per row. A column is "title:format", e.g.
    "req/s:{:.0f}", aligned right, or "title:<{}" aligned left; a bare title shows values as they
    are. A row is its values in order, or a mapping that the formats name, e.g. "req/s:{per_s:.0f}"."""
    titles, formats = [c.partition(":")[0] for c in spec], [c.partition(":")[2] or "{}" for c in spec]
    cells = [
        [f.lstrip("<").format_map(row) for f in formats]
        if isinstance(row, Mapping)
        else [f.lstrip("<").format(value) for f, value in zip(formats, row, strict=True)]
        for row in rows
    ]
    widths = [max(len(title), *(len(row[i]) for row in cells)) for i, title in enumerate(titles)]
    left = [f.startswith("<") for f in formats]

    def line(parts: Sequence[str]) -> str:
        return "  ".join(
            p.ljust(w) if lt else p.rjust(w) for p, w, lt in zip(parts, widths, left, strict=True)
        ).rstrip()

    return [line(titles), *map(line, cells)]


def met(goal: bool) -> str:
    return "met" if goal else "NOT met"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def table(measures: Sequence[Measure], baseline: str, labels: Mapping[str, str] | None = None) -> str:
    """One row per variant and load: req/s, latency, errors, CPU per request, and the ratio to
    `baseline`'s req/s on the same load."""
    base = {m.load: m.requests_per_s for m in measures if m.variant == baseline}
    spec = ["variant:<{}", "load:<{}", "req/s:{:.0f}", "p50 ms:{:.1f}", "p99 ms:{:.1f}", "errors", "shed"]
    spec += ["CPU/req:{:.2f} ms", f"vs {baseline}"]
    rows = [
        (m.variant, labels[m.load] if labels else m.load, m.requests_per_s, m.p50_ms, m.p99_ms, m.errors,
         m.shed, m.cpu_ms, ratio(m.requests_per_s, base.get(m.load, 0)))
        for m in measures
    ]  # fmt: skip
    return "\n".join(columns(spec, rows))


# --- the record ---------------------------------------------------------------------------------


class Record:
    """A run's header, taken when it starts (command, date, machine), and what it writes.

    `write` prints the text; with `record`, it also writes bench/results/<name>.txt (the header,
    then the text as the named section `name`, then any further `sections`) and <name>.json (the
    header, then `data`). Pages include the sections and draw their charts from the JSON.
    """

    def __init__(self, name: str, command: str | None = None) -> None:
        self.name = name
        self.command = command or _command()
        self.started = datetime.now(UTC)
        self.load_average = os.getloadavg()[0]

    def header(self, postgres: str) -> dict[str, Any]:
        return {
            "command": self.command,
            "date": self.started.strftime("%Y-%m-%d %H:%M UTC"),
            "cores": os.cpu_count(),
            "load_average": round(self.load_average, 2),
            "load_when": "at start",
            "postgres": postgres or "no database",
        }

    def write(
        self,
        text: str,
        data: Mapping[str, Any],
        *,
        postgres: str,
        record: bool,
        sections: Mapping[str, str] = {},
    ) -> None:
        print(text)
        header = self.header(postgres)
        body = json.dumps({"header": header, **data}, indent=2, default=str) + "\n"
        (ROOT / "artifacts").mkdir(exist_ok=True)
        (ROOT / "artifacts" / f"bench-{self.name}.json").write_text(body)
        if record:
            RESULTS.mkdir(exist_ok=True)
            top = header_lines(header)
            # The markers are built from parts: this file itself must not look like it holds a section.
            marker = "# --8<" + "-- [{}:{}]"
            parts = [
                f"{marker.format('start', n)}\n{top}{t}\n{marker.format('end', n)}\n"
                for n, t in {self.name: text, **sections}.items()
            ]
            (RESULTS / f"{self.name}.txt").write_text("".join(parts))
            (RESULTS / f"{self.name}.json").write_text(body)
            print(f"recorded in bench/results/{self.name}.txt and .json", file=sys.stderr)


def scenario(
    name: str,
    run: Callable[..., Mapping[str, Any]],
    report: Callable[[Any], str],
    sections: Callable[[Any], Mapping[str, str]] = lambda data: {},
) -> Callable[..., None]:
    """A scenario's `main`, which `tasks.py bench --name` calls: `run` (given the seconds and
    connections asked for, where it takes them), its `report` printed, and with `record` written
    as the record `name` (its JSON: what `run` returned)."""

    def main(seconds: int = 0, connections: int = 0, record: bool = False) -> None:
        started = Record(name)
        takes = inspect.signature(run).parameters
        asked = {k: v for k, v in (("seconds", seconds), ("connections", connections)) if v and k in takes}
        data = run(**asked)
        postgres = data.get("postgres", "")
        started.write(report(data), data, postgres=postgres, record=record, sections=sections(data))

    return main


def header_lines(header: Mapping[str, Any]) -> str:
    return (
        f"# {header['command']}\n# recorded {header['date']} on {header['cores']} cores "
        f"(load average {header['load_average']} {header['load_when']}), {header['postgres']}\n"
    )


def _command() -> str:
    """The command that started this run, as a reader would type it."""
    if Path(sys.argv[0]).name == "tasks.py":
        return shlex.join(["python3", "tasks.py", *sys.argv[1:]])
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
