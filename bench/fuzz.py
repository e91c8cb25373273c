"""Fuzz benchmark: every operation of the OpenAPI document, many more examples than the suite.

It runs the same configuration as tests/api/test_fuzz.py (same checks, same tokens, same
protection of the fixture identities, same seed unless told otherwise), but through
schemathesis' own engine, the one behind `st run`, so it gets every phase:

- examples (from the schema), coverage (boundary and negative values, deterministic),
  fuzzing (random positive and negative cases, --max-examples per operation),
- stateful: call chains (create -> get -> update -> delete) along the links schemathesis
  infers from the response schemas and path parameters (our spec declares no links).

The app runs in-process (ASGI) on a fresh database per backend: SQLite in a temp file and/or
a throwaway PostgreSQL cluster started like the tests do (tests/peers/postgres.py).

It prints, per backend: the operations covered, the test cases run (per phase), each unique
finding (operation, check, what the server answered and a curl to reproduce it), and the
elapsed time. It exits 1 if anything was found, so it can gate a nightly job.

    python bench/fuzz.py                                   # SQLite, 200 examples per operation
    python bench/fuzz.py --backend both --max-examples 1000 --stateful-steps 20
    python bench/fuzz.py --phases coverage,fuzzing --seed 7 --show 3
    python bench/fuzz.py --checks all                      # also schemathesis' other checks
    python bench/fuzz.py --phases stateful --include '/v1/(sites|assets)'
    python bench/fuzz.py --modes positive                  # valid inputs only (see below)

A failure ends the stateful phase, so one finding there can hide the next: --modes positive
looks past findings that only invalid input triggers, --include past the other operations.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.api.test_fuzz and tests.peers.postgres

import schemathesis  # noqa: E402
from schemathesis.engine import events  # noqa: E402
from schemathesis.engine import from_schema as engine_for  # noqa: E402
from schemathesis.engine.statistic import Statistic  # noqa: E402
from tests.api.test_fuzz import CHECKS, SEED, fuzz_schema_for  # noqa: E402
from tests.peers.postgres import PostgresCluster, find_bindir  # noqa: E402

from metalyard.api import create_app  # noqa: E402
from metalyard.auth import service as auth_service  # noqa: E402
from metalyard.auth.schemas import TokenCreate, UserCreate  # noqa: E402
from metalyard.auth.scopes import Scope  # noqa: E402
from metalyard.config import Settings  # noqa: E402
from metalyard.db import Database, upgrade  # noqa: E402

PHASES = ("examples", "coverage", "fuzzing", "stateful")
ALL_CHECKS = (
    *CHECKS,
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
)


@dataclass
class Tokens:
    admin: str
    write: str
    read: str
    other_write: str


def make_tokens(database: Database) -> Tokens:
    """The same users and tokens as the `tokens` fixture in tests/conftest.py."""
    with database.transaction() as session:
        admin = auth_service.bootstrap(session)
        secrets = {}
        for name, role in (("wanda", Scope.WRITE), ("rita", Scope.READ), ("otto", Scope.WRITE)):
            user = auth_service.create_user(session, data=UserCreate(name=name, role=role))
            _, secrets[name] = auth_service.create_token(
                session, data=TokenCreate(scope=role), user_id=user.id, ceiling=role
            )
    assert admin is not None
    return Tokens(admin, secrets["wanda"], secrets["rita"], secrets["otto"])


@contextmanager
def database_url(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="metalyard-fuzz-") as tmp:
            yield f"sqlite:///{tmp}/metalyard.db"
        return
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not installed (apt-get install postgresql)")
    cluster = PostgresCluster(bindir)
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@dataclass
class Outcome:
    backend: str
    operations: int
    tested: set[str]
    cases: int
    cases_by_phase: Counter
    findings: int
    restored: int
    elapsed: float


def run_backend(backend: str, args: argparse.Namespace) -> Outcome:
    started = time.perf_counter()
    with (
        database_url(backend) as url,
        # its own data directory: the audit log's key file is made there
        tempfile.TemporaryDirectory(prefix="metalyard-fuzz-data-") as data_dir,
    ):
        upgrade(url)
        database = Database(url)
        tokens = make_tokens(database)
        settings = Settings(region="fuzz-1", database_url=url, data_dir=data_dir)
        app = create_app(settings, database)
        labels = [
            f"{method.upper()} {path}"
            for path, methods in app.openapi()["paths"].items()
            for method in methods
        ]
        left_out = [
            label for label in labels if args.include and not re.search(args.include, label)
        ]
        schema = fuzz_schema_for(
            app,
            tokens,
            database,
            max_examples=args.max_examples,
            stateful_steps=args.stateful_steps,
            seed=args.seed,
            checks=args.checks,
            phases=args.phases,
            max_time=args.max_time,
            modes=args.modes,
            continue_on_failure=not args.stop_on_failure,
            disabled=tuple(left_out),
        )
        identities, crashes = schema.identities, schema.crashes
        operations = len(labels) - len(left_out)
        statistic = Statistic()
        by_phase: Counter = Counter()
        errors: list[events.NonFatalError] = []
        print(
            f"\n== {backend}: {operations} operations, phases {','.join(args.phases)}", flush=True
        )
        for event in engine_for(schema).execute():
            if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
                statistic.on_scenario_finished(event.recorder)
                by_phase[event.phase.value] += len(event.recorder.cases)
            elif isinstance(event, events.PhaseFinished) and args.verbose:
                print(f"   phase {event.phase.name.value}: {event.status.value}", flush=True)
            elif isinstance(event, events.NonFatalError):
                errors.append(event)
            elif isinstance(event, events.FatalError):
                raise event.exception
        elapsed = time.perf_counter() - started
        findings = report_findings(statistic, show=args.show)
        for error in errors:
            print(f"   ERROR {error.label}: {error.info.title}: {error.info.message}")
        report_crashes(crashes)
        restored = identities.restored
        database.engine.dispose()
    return Outcome(
        backend=backend,
        operations=operations,
        tested=statistic.tested_operations,
        cases=statistic.total_cases,
        cases_by_phase=by_phase,
        findings=findings + len(errors),
        restored=restored,
        elapsed=elapsed,
    )


def report_findings(statistic: Statistic, *, show: int) -> int:
    """Print every unique failure, grouped by operation; return how many there were."""
    total = 0
    for label, groups in sorted(statistic.failures.items()):
        for shown, group in enumerate(groups.values()):
            total += len(group.failures)
            if shown >= show:
                continue
            response = group.response
            answer = ""
            if response is not None:
                body = response.content[:300].decode("utf-8", "replace") if response.content else ""
                answer = f"   answered {response.status_code}: {body}"
            print(f"\n-- {label}")
            for failure in group.failures:
                detail = " ".join(str(failure.message).split())[:400]
                print(f"   [{failure.code}] {failure.title}: {detail}")
            if answer:
                print(answer)
            steps = [(step.operation, step.curl) for step in group.steps]
            if not steps and group.code_sample:
                steps = [(label, group.code_sample)]
            for number, (operation, curl) in enumerate(steps, 1):
                print(f"   step {number} ({operation}): {' '.join(curl.split())}")
    return total


def report_crashes(crashes: list[tuple[str, BaseException]]) -> None:
    """The exceptions behind the 500s, by type and the innermost line of ours that raised."""
    causes: dict[tuple[str, str], list[str]] = {}
    for request, error in crashes:
        frames = traceback.extract_tb(error.__traceback__)
        ours = [f for f in frames if "/metalyard/" in f.filename] or frames
        where = f"{ours[-1].filename.rsplit('/src/', 1)[-1]}:{ours[-1].lineno} {ours[-1].name}"
        kind = type(error).__name__
        message = " ".join(str(error).split())[:160]
        causes.setdefault((f"{kind} at {where}", message), []).append(request)
    if causes:
        print("\n   server exceptions behind the 500s:")
    for (cause, message), requests in sorted(causes.items()):
        print(f"   {len(requests):>4}x {cause}: {message}")
        print(f"         e.g. {requests[0]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--max-examples", type=int, default=200, help="per operation (fuzzing)")
    parser.add_argument(
        "--stateful-steps", type=int, default=12, help="max calls in one stateful scenario"
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        type=lambda value: tuple(value.split(",")),
        help=f"comma-separated subset of {','.join(PHASES)}",
    )
    parser.add_argument(
        "--checks",
        default=",".join(CHECKS),
        type=lambda value: ALL_CHECKS if value == "all" else tuple(value.split(",")),
        help="comma-separated schemathesis checks, or 'all' (default: the suite's)",
    )
    parser.add_argument(
        "--modes",
        default="positive,negative",
        type=lambda value: tuple(value.split(",")),
        help="positive (valid inputs), negative (invalid ones), or both (default)",
    )
    parser.add_argument(
        "--max-time", type=int, default=0, help="seconds; fuzzing and stateful repeat until spent"
    )
    parser.add_argument(
        "--stop-on-failure",
        action="store_true",
        help="end a scenario at its first failure (default: go on, to find what it hides)",
    )
    parser.add_argument(
        "--include", metavar="REGEX", help="only the operations whose 'METHOD /path' matches"
    )
    parser.add_argument("--show", type=int, default=1, help="failing cases shown per operation")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(
        f"schemathesis {schemathesis.__version__}; seed {args.seed}; "
        f"{args.max_examples} examples per operation; stateful steps {args.stateful_steps}; "
        f"modes {','.join(args.modes)}; checks {','.join(args.checks)}"
    )
    outcomes = [run_backend(backend, args) for backend in backends]
    print("\n== summary")
    for o in outcomes:
        phases = ", ".join(f"{phase} {count}" for phase, count in sorted(o.cases_by_phase.items()))
        print(
            f"{o.backend:>10}: operations {len(o.tested)}/{o.operations} covered; "
            f"{o.cases} test cases ({phases}); findings {o.findings}; "
            f"identities restored {o.restored}x; {o.elapsed:.1f} s"
        )
    return 1 if any(o.findings for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
