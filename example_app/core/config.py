"""Application settings, read from the environment (and an optional `.env` file)."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from limits import parse as parse_rate_limit
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from example_app.core.log_format import LogFormat

TracesExporter = Literal["none", "otlp", "console"]  # OTEL_TRACES_EXPORTER's values here

APP_DIR = Path(__file__).resolve().parent.parent
MIN_SECRET_KEY_LENGTH = 32
NEW_KEY_HINT = "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
API_V1_PREFIX = "/api/v1"  # part of the API's contract (clients and the token URL name it), not a setting


# --8<-- [start:settings]
class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # An explicit async driver: a bare postgresql:// would make SQLAlchemy 2.1 pick psycopg.
    DATABASE_URL: str
    DEBUG: bool = False
    # One uvicorn worker holds at most POOL_SIZE + MAX_OVERFLOW connections; keep
    # workers x that below PostgreSQL's max_connections (100 by default).
    DB_POOL_SIZE: Annotated[int, Field(ge=1)] = 10
    DB_MAX_OVERFLOW: Annotated[int, Field(ge=0)] = 10
    # --8<-- [start:budget_settings]
    # The connection budget (example_app/core/budget.py), checked at start-up: every process of
    # the deployment may hold its pools full at once, and the server must accept them all.
    WEB_CONCURRENCY: Annotated[int, Field(ge=1)] = 1  # uvicorn workers per instance (uvicorn reads it too)
    APP_INSTANCES: Annotated[int, Field(ge=1)] = 1  # instances of the app on this database
    JOB_WORKERS: Annotated[int, Field(ge=0)] = 1  # job worker processes on this database
    JOB_QUEUE_POOL_SIZE: Annotated[int, Field(ge=1)] = 8  # psycopg connections of one job worker's queue
    DB_RESERVED_CONNECTIONS: Annotated[int, Field(ge=0)] = 5  # for migrations, psql, monitoring
    # Behind PgBouncer in transaction mode (example_app/core/pooler.py): no prepared statements
    # kept between transactions; the budget is then PgBouncer's pool size, not checked here.
    DB_BEHIND_POOLER: bool = False
    # --8<-- [end:budget_settings]
    # --8<-- [start:pool_settings]
    # A pooled connection older than this is replaced when it is next checked out, without a
    # round trip: firewalls and proxies drop idle connections silently after minutes or hours.
    DB_POOL_RECYCLE: Annotated[float, Field(gt=0)] = 1800.0
    # Prepared statements kept per connection: a statement it has run before costs one round
    # trip, not two (prepare, then execute). 0 turns the cache off.
    DB_STATEMENT_CACHE_SIZE: Annotated[int, Field(ge=0)] = 100
    # --8<-- [end:pool_settings]
    DB_ECHO: bool = False  # SQL logging; bound parameters are never logged
    # --8<-- [start:db_timeouts]
    # How long a request may wait on the database, step by step: an outage answers 503 (with
    # Retry-After) within seconds, instead of holding the request until the client gives up.
    DB_POOL_TIMEOUT: Annotated[float, Field(gt=0)] = 3.0  # for a free connection of the pool
    DB_CONNECT_TIMEOUT: Annotated[float, Field(gt=0)] = 3.0  # to open a new connection
    DB_STATEMENT_TIMEOUT: Annotated[float, Field(gt=0)] = 5.0  # PostgreSQL cancels a longer statement
    DB_COMMAND_TIMEOUT: Annotated[float, Field(gt=0)] = 6.0  # a server that does not answer at all
    # --8<-- [end:db_timeouts]
    DB_APPLICATION_NAME: str = "fastapi-ml-guide"  # how the app's connections show in pg_stat_activity
    HEALTH_CHECK_TIMEOUT: Annotated[float, Field(gt=0)] = 2.0
    # Log lines as text, or JSON objects for a log collector (core/log_format.py reads it first,
    # since uvicorn configures logging before the app starts; it is here to be validated too).
    LOG_FORMAT: LogFormat = "text"
    # --8<-- [start:metrics_token]
    # GET /metrics (Prometheus) answers only `Authorization: Bearer <METRICS_TOKEN>`; unset, it
    # answers 404: the counters say what runs and how busy it is, not for the public internet.
    METRICS_TOKEN: SecretStr | None = None
    # --8<-- [end:metrics_token]
    # --8<-- [start:traces_exporter]
    # OpenTelemetry's own variable: "otlp" (to OTEL_EXPORTER_OTLP_ENDPOINT) or "console" turns
    # traces on (core/tracing.py); unset or "none", they are off and cost nothing.
    OTEL_TRACES_EXPORTER: TracesExporter = "none"
    # --8<-- [end:traces_exporter]

    # --8<-- [start:model_settings]
    # The models: registered in the database (model_versions), each a folder with manifest.json
    # and the file it names. Only folders inside one of these are loaded (a row cannot point the
    # app at an arbitrary file); a relative path in a row is relative to the project's root.
    MODEL_ROOTS: Annotated[list[Path], Field(min_length=1)] = [APP_DIR / "ml" / "artifacts"]
    # The alias the prediction routes answer with when a request names no version.
    MODEL_ALIAS: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,49}$")] = "production"
    # Each process re-reads the aliases this often, whatever it heard: a NOTIFY switches it within
    # milliseconds, this bounds the switch when a notification was missed (a reconnect, a pooler).
    MODEL_POLL_SECONDS: Annotated[float, Field(gt=0, le=3_600)] = 15.0
    # Canary: this share of callers (percent, each always the same ones) is answered by the
    # version behind the alias `candidate`, when there is one; 0 turns it off.
    MODEL_CANARY_PERCENT: Annotated[float, Field(ge=0, le=100)] = 0.0
    # Shadow: this share of production predictions (percent of requests) is predicted again by
    # the `candidate` version after the answer is sent, logged and never returned; 0 turns it off.
    MODEL_SHADOW_PERCENT: Annotated[float, Field(ge=0, le=100)] = 0.0
    # --8<-- [end:model_settings]
    # Predictions computing at once (threads in the pool); more wait, up to INFERENCE_TIMEOUT.
    INFERENCE_CONCURRENCY: Annotated[int, Field(ge=1, le=64)] = 2
    INFERENCE_TIMEOUT: Annotated[float, Field(gt=0)] = 5.0
    # Prediction requests in progress at once per process; more are answered 503 + Retry-After
    # before their body is read, so that the event loop stays free for every other request
    # (the Serving page has /health's recorded p99 under prediction load, with and without it).
    # With micro-batching, up to MODEL_BATCH_MAX_ROWS single predictions take one place.
    PREDICTION_MAX_IN_PROGRESS: Annotated[int, Field(ge=1, le=1_000)] = 1
    # --8<-- [start:batch_settings]
    # Micro-batching (LC06): a single prediction waits at most MODEL_BATCH_WAIT_MS for others,
    # up to MODEL_BATCH_MAX_ROWS in all, and they are predicted in one call and logged in one
    # INSERT. 0 turns it off: each single prediction is a call and an INSERT of its own.
    MODEL_BATCH_WAIT_MS: Annotated[float, Field(ge=0, le=100)] = 5.0
    MODEL_BATCH_MAX_ROWS: Annotated[int, Field(ge=2, le=1_000)] = 8
    # --8<-- [end:batch_settings]
    # Request bodies above this are refused with 413 while they are read, before parsing. The
    # largest legitimate body is a full prediction batch (1,000 rows of 64 numbers: about 0.5 MB).
    MAX_REQUEST_BODY_BYTES: Annotated[int, Field(ge=1_024)] = 2 * 1024 * 1024
    # After that 413, what the client still sends of the body is read and dropped for at most
    # this long, then the connection closes: a client that sends all before it reads gets to
    # read the 413 (closed at once, it would see "connection reset" instead).
    REFUSED_BODY_DRAIN_SECONDS: Annotated[float, Field(ge=0, le=300)] = 10.0

    # --8<-- [start:search_settings]
    # Semantic search (ML06): HNSW's candidate list per query. Higher finds more of the true
    # nearest neighbours (recall) and costs time; pgvector's default is 40.
    SEARCH_EF_SEARCH: Annotated[int, Field(ge=10, le=1_000)] = 100
    # --8<-- [end:search_settings]
    # --8<-- [start:job_settings]
    # Background jobs (ML07). A worker without a job looks for one this often (a NOTIFY wakes it
    # at once for new jobs; retries scheduled for later are found by this polling).
    JOB_POLL_SECONDS: Annotated[float, Field(gt=0)] = 2.0
    # Each worker writes a heartbeat this often; a worker silent for JOB_STALLED_SECONDS is
    # dead, and its running jobs are queued again (the recover_stalled_jobs task, every minute).
    JOB_HEARTBEAT_SECONDS: Annotated[float, Field(gt=0)] = 10.0
    JOB_STALLED_SECONDS: Annotated[float, Field(gt=0)] = 30.0
    # On SIGINT/SIGTERM a worker finishes its running jobs, for at most this long.
    JOB_SHUTDOWN_SECONDS: Annotated[float, Field(gt=0)] = 30.0
    # GET /jobs/{id}/events reads the job's new events this often.
    JOB_EVENTS_POLL_SECONDS: Annotated[float, Field(gt=0)] = 0.5
    # --8<-- [end:job_settings]

    # --8<-- [start:auth_settings]
    # Signs the access tokens (HS256). No default: a key written here would be in every clone
    # of the repository. The app refuses to start without one (migrations do not need it).
    SECRET_KEY: SecretStr | None = None
    ACCESS_TOKEN_MINUTES: Annotated[int, Field(ge=1, le=24 * 60)] = 30
    # Login attempts per client address, and failed ones per account (a success clears those),
    # in the `limits` notation: "5/minute", "100 per hour".
    LOGIN_FAILURES_PER_ACCOUNT: str = "5/minute"
    LOGIN_ATTEMPTS_PER_ADDRESS: str = "20/minute"
    # Where the failure counters live. In memory, each process counts for itself; several
    # instances share one store, e.g. async+redis://redis:6379/0 (install `redis` for it).
    RATE_LIMIT_STORAGE: str = "async+memory://"
    # Argon2 hashes computed at once, process-wide (each holds 64 MiB while it runs); the
    # others wait for a slot. More than the CPU cores buys no throughput, only memory.
    PASSWORD_HASH_CONCURRENCY: Annotated[int, Field(ge=1, le=64)] = 2
    # Argon2id's cost per hash: pwdlib's defaults (64 MiB, 3 passes, 4 lanes). Stored hashes
    # carry their own parameters, so changing these affects new hashes only. The tests lower
    # them (a test account needs no protection); the tests of hashing cost do not.
    PASSWORD_HASH_MEMORY_KIB: Annotated[int, Field(ge=8, le=4 * 1024 * 1024)] = 65_536
    PASSWORD_HASH_TIME_COST: Annotated[int, Field(ge=1, le=100)] = 3
    PASSWORD_HASH_PARALLELISM: Annotated[int, Field(ge=1, le=64)] = 4
    # --8<-- [end:auth_settings]

    @field_validator("DATABASE_URL")
    @classmethod
    def _async_postgres_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL; expected postgresql+asyncpg://user:password@host:5432/dbname "
                "(percent-encode special characters in the password)"
            ) from None
        if url.drivername != "postgresql+asyncpg":
            raise ValueError(f"driver {url.drivername!r} is not supported; use postgresql+asyncpg://...")
        if not url.database:
            raise ValueError("the URL names no database")
        return value

    @field_validator("SECRET_KEY")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                f"is too short: use at least {MIN_SECRET_KEY_LENGTH} characters ({NEW_KEY_HINT})"
            )
        return value

    @field_validator("LOGIN_FAILURES_PER_ACCOUNT", "LOGIN_ATTEMPTS_PER_ADDRESS")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        parse_rate_limit(value)  # ValueError for anything but "<count>/<period>" or "<count> per <period>"
        return value

    @model_validator(mode="after")
    def _argon2_memory(self) -> "Settings":
        if self.PASSWORD_HASH_MEMORY_KIB < 8 * self.PASSWORD_HASH_PARALLELISM:
            raise ValueError("PASSWORD_HASH_MEMORY_KIB must be at least 8 x PASSWORD_HASH_PARALLELISM")
        return self

    @model_validator(mode="after")
    def _server_cancels_first(self) -> "Settings":
        # The server's cancel is a clean error on a connection that stays usable; the client's
        # timeout is the fallback for a server that cannot answer at all, so it comes later.
        if self.DB_COMMAND_TIMEOUT <= self.DB_STATEMENT_TIMEOUT:
            raise ValueError("DB_COMMAND_TIMEOUT must be longer than DB_STATEMENT_TIMEOUT")
        return self

    @property
    def database_url(self) -> URL:
        return make_url(self.DATABASE_URL)


# --8<-- [end:settings]


def _one_line(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is not set"
        parts.append(f"{field} {message}")
    return "Invalid settings: " + "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment as it is now (`overrides` win); a bad value stops with one line."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SystemExit(_one_line(error)) from None


@lru_cache
def get_settings() -> Settings:
    """The environment's settings, loaded once: for the command-line tools (migrations, the job
    worker, tasks.py). The app reads the settings it was made with (create_app), not these."""
    return load_settings()


def signing_key(settings: Settings) -> str:
    """SECRET_KEY, which the app cannot run without: create_app asks for it first."""
    if settings.SECRET_KEY is None:
        raise SystemExit(f"Invalid settings: SECRET_KEY is not set; {NEW_KEY_HINT}")
    return settings.SECRET_KEY.get_secret_value()
