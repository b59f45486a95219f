"""The fuzz run (HD05): schemathesis against the served app, every operation, a fixed seed.

Used by tests/hardening/test_fuzz.py (a short run in every `python3 tasks.py test`) and by
`python3 tasks.py fuzz` (a long one). Each generated case is sent over HTTP to uvicorn on a
migrated PostgreSQL, with a signed-in user's token, and its answer is checked: no 5xx, the status
documented for the operation, the body valid against the documented schema and content type.
A failed check is recorded with its case and the run goes on, so one run reports every finding.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
SEED = 20261129


@dataclass
class Finding:
    operation: str
    check: str
    request: str  # method, URL and body of the case, cut short
    status: int


@dataclass
class FuzzReport:
    per_operation_budget: int = 0
    cases: int = 0
    seconds: float = 0.0
    per_operation: dict[str, int] = field(default_factory=dict)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    findings: list[Finding] = field(default_factory=list)

    def summary(self) -> str:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        lines = [
            f"{self.cases} cases over {len(self.per_operation)} operations (up to "
            f"{self.per_operation_budget} each) in {self.seconds:.1f} s ({self.cases / self.seconds:.0f} "
            f"cases/s), seed {SEED}",
            f"server errors: {sum(n for code, n in self.statuses.items() if code >= 500 and code != 503)}, "
            f"findings: {len(self.findings)}",
            f"statuses: {statuses}",
        ]
        lines += [f"  {op}: {n}" for op, n in sorted(self.per_operation.items())]
        lines += [f"FINDING {f.operation} [{f.check}] {f.status}: {f.request}" for f in self.findings]
        return "\n".join(lines)


def run(base_url: str, headers: dict[str, str], cases_per_operation: int) -> FuzzReport:
    """Fuzz every operation of the served app's OpenAPI document, positive and negative cases."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = FuzzReport(per_operation_budget=cases_per_operation)
    session = requests.Session()
    started = time.perf_counter()
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # Err: the schema itself is invalid
        name = f"{operation.method.upper()} {operation.path}"
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )
        _fuzz(
            operation=name,
            strategy=strategy,
            base_url=base_url,
            headers=headers,
            session=session,
            report=report,
            examples=cases_per_operation,
        )
    report.seconds = time.perf_counter() - started
    return report


def _fuzz(
    *,
    operation: str,
    strategy: st.SearchStrategy[Any],
    base_url: str,
    headers: dict[str, str],
    session: requests.Session,
    report: FuzzReport,
    examples: int,
) -> None:
    @seed(SEED)
    @settings(
        max_examples=examples,
        database=None,  # the same cases on every machine and every run
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: findings are recorded, not raised
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def one(case: schemathesis.Case[Any]) -> None:
        merged = {**headers, **dict(case.headers or {})}
        response = case.call(base_url=base_url, session=session, headers=merged, timeout=30)
        report.cases += 1
        report.per_operation[operation] = report.per_operation.get(operation, 0) + 1
        report.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=merged)
        except (AssertionError, FailureGroup) as failure:
            request = response.request
            body = request.body if isinstance(request.body, bytes | str | None) else "<stream>"
            text = f"{request.method} {request.url} {str(body)[:300]!r}"
            for check in getattr(failure, "exceptions", [failure]):
                report.findings.append(Finding(operation, type(check).__name__, text, response.status_code))

    one()
