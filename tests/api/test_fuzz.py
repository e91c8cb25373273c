"""Fuzz every operation of the app's own OpenAPI document with schemathesis.

In-process against the ASGI app, on SQLite and on PostgreSQL (the `app` fixture), with the
write token, and the admin token for the operations that declare `x-required-scope: admin`.
Every response must:

- not be a server error (5xx),
- carry a status code the operation documents,
- carry the content type it documents,
- match the documented response schema (and documented headers);
- not be a 409 "conflicts with data written at the same time": with one writer, that is a
  database constraint refusing what validation let through (a custom check).

Any finding fails the test. Generation is derandomized, with a fixed seed and no example
database, so every run sends the same requests. Two tests:

- every operation on its own (schemathesis' fuzzing phase, positive and negative inputs);
- chains of calls, each fed by an earlier answer: along the links schemathesis infers from
  the response schemas and path parameters (create -> get -> update -> delete, list -> get,
  ...; the spec declares no links), plus a `next_page` link on every paged list.

`bench/fuzz.py` runs the same configuration, plus the coverage phase, with many more examples.

What keeps the fuzzer useful:

- it must not lock itself out, which would hide every later finding behind a 401: after each
  write to users or tokens, the fixture users and tokens are restored (and checked at the end);
- a few objects exist before it starts (a site with a rack, a machine class, a team with a
  project, three assets, the orchestrator's test flows), and the fields that name them (`site`,
  `rack`, `team`, `flow`, ...) often get their names, so creations reach past "no site named";
  `sort` often names a real field and `limit` is often 1 or 2, so page 2 gets asked for.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import events
from schemathesis.engine import from_schema as engine_for
from schemathesis.engine.statistic import Statistic
from sqlalchemy import update

from metalyard.api.errors import RACE_MESSAGE
from metalyard.auth import service as auth_service
from metalyard.auth.actor import Actor
from metalyard.auth.models import ApiToken, User
from metalyard.auth.schemas import ProjectCreate, TeamCreate
from metalyard.auth.scopes import Scope
from metalyard.db import Database
from metalyard.inventory import service as inventory
from metalyard.inventory.schemas import (
    AssetCreate,
    MachineClassCreate,
    RackCreate,
    SiteCreate,
)
from metalyard.orchestrator.flows import flows
from tests.orchestrator import flows as _test_flows  # noqa: F401  (registers them)

SEED = 20_240_601


@schemathesis.check
def no_constraint_conflict(ctx, response, case) -> None:
    """A 409 "conflicts with data written at the same time" is a database constraint that
    refused a write the code let through. The fuzzer writes one request at a time, so there is
    no other writer to race: the request should have been refused with a 4xx saying why."""
    if response.status_code == 409 and RACE_MESSAGE in response.text:
        raise AssertionError(
            f"409 from a database constraint with no concurrent writer: {response.text}"
        )


CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "no_constraint_conflict",
)
FIXTURE_ROLES = {
    "admin": Scope.ADMIN,
    "wanda": Scope.WRITE,
    "rita": Scope.READ,
    "otto": Scope.WRITE,
}
LOCKOUT_PATHS = ("/v1/users", "/v1/tokens")
"""Writes here can disable a fixture user or revoke a fixture token: restored after each."""
SEEDED = {
    "site": "fz-site",
    "rack": "fz-rack",
    "class": "fz-class",
    "team": "fz-team",
    "project": "fz-project",
}
REFERENCES = {
    # body field -> (dictionary, how often the generated value is replaced by a seeded name)
    "site": ("sites", 0.7),
    "rack": ("racks", 0.7),
    "machine_class": ("classes", 0.5),
    "team": ("teams", 0.7),
    "owner_team": ("teams", 0.5),
    "project": ("projects", 0.5),
    "flow": ("flows", 0.8),
    # BMC calls on fuzzed assets go to the fake driver, never to a made-up address on the
    # network (tests/drivers covers the real protocols against emulators).
    "bmc_driver": ("bmc-drivers", 1.0),
    "bmc_address": ("bmc-addresses", 1.0),
}
SORTS = ("id", "name", "serial", "hostname", "state", "created_at", "updated_at")
"""Every field some list sorts by (inventory.service); each list refuses the others with 422."""

# The in-process suite's budget (bench/fuzz.py raises them).
MAX_EXAMPLES = 8
STATEFUL_EXAMPLES = 12
STATEFUL_STEPS = 6
SUITE_PHASES = ("examples", "fuzzing", "stateful")


def admin_operations(spec: dict[str, Any]) -> list[str]:
    """`METHOD /path` of every operation that needs the admin scope."""
    return sorted(
        f"{method.upper()} {path}"
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
        if operation.get("x-required-scope") == Scope.ADMIN.value
    )


def fuzz_config(
    spec: dict[str, Any],
    *,
    region: str,
    write_token: str,
    admin_token: str,
    max_examples: int = MAX_EXAMPLES,
    stateful_steps: int = STATEFUL_STEPS,
    seed: int = SEED,
    checks: tuple[str, ...] = CHECKS,
    phases: tuple[str, ...] = SUITE_PHASES,
    max_time: int | None = None,
    modes: tuple[str, ...] = ("positive", "negative"),
    continue_on_failure: bool = False,
    disabled: tuple[str, ...] = (),
) -> schemathesis.Config:
    """The schemathesis configuration both the suite and bench/fuzz.py run."""
    bindings = {}
    for field, (dictionary, probability) in REFERENCES.items():
        binding = {"dictionary": dictionary, "probability": probability}
        bindings[f"body.{field}"] = binding
        bindings[f"body.assets[*].{field}"] = binding  # POST /v1/assets/import
    # `sort` is a free string in the spec, so the fuzzer would almost never name a real field.
    bindings["query.sort"] = {"dictionary": "sorts", "probability": 0.7}
    # Short pages, so that lists have a next page to follow (see `with_page_links`).
    bindings["query.limit"] = {"dictionary": "short-pages", "probability": 0.5}
    # Mostly the region served: a request naming another is refused (421) before it gets far.
    bindings["header.X-Metalyard-Region"] = {"dictionary": "regions", "probability": 0.9}
    data: dict[str, Any] = {
        "seed": seed,
        # A slow or filtered generation is schemathesis' problem, not a finding about the API.
        "suppress-health-check": ["all"],
        "headers": {"Authorization": f"Bearer {write_token}"},
        "generation": {
            "mode": "all" if len(modes) > 1 else modes[0],
            "max-examples": max_examples,
            "deterministic": True,
            "database": "none",
        },
        "checks": {"enabled": False, **{name: {"enabled": True} for name in checks}},
        "phases": {
            **{name: {"enabled": name in phases} for name in ("examples", "coverage", "fuzzing")},
            "stateful": {"enabled": "stateful" in phases, "max-steps": stateful_steps},
        },
        "dictionaries": {
            "sites": {"values": [SEEDED["site"]]},
            "racks": {"values": [SEEDED["rack"]]},
            "classes": {"values": [SEEDED["class"]]},
            "teams": {"values": [SEEDED["team"]]},
            "projects": {"values": [SEEDED["project"]]},
            "flows": {"values": [flow.name for flow in flows] or ["none"]},
            "short-pages": {"values": [1, 2]},
            "regions": {"values": [region]},
            "bmc-drivers": {"values": ["fake"]},
            "bmc-addresses": {"values": ["", "fuzz-node"]},
            "sorts": {"values": [f"{way}{field}" for field in SORTS for way in ("", "-")]},
        },
        "parameters": bindings,
        "operations": [
            {
                "include-name": admin_operations(spec),
                "headers": {"Authorization": f"Bearer {admin_token}"},
            }
        ],
    }
    if disabled:
        data["operations"].append({"include-name": list(disabled), "enabled": False})
    if max_time:
        data["max-time"] = max_time
    if continue_on_failure:
        data["continue-on-failure"] = True
    return schemathesis.Config.from_dict(data)


def with_page_links(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec plus a `next_page` link on every paged list: `next_cursor` -> `cursor`.

    Each PageOut says "pass as `cursor` to get the next page", but the spec declares no links
    and schemathesis does not infer this one, so page 2 of a list would never be asked for.
    The link keeps the request's other parameters (sort, filters, path), as a client would.
    """
    spec = copy.deepcopy(spec)
    for path, methods in spec["paths"].items():
        operation = methods.get("get")
        if operation is None:
            continue
        given = [(p["in"], p["name"]) for p in operation.get("parameters", [])]
        query = [name for where, name in given if where == "query"]
        ok = operation["responses"].get("200", {})
        body = json.dumps(ok.get("content", {}))
        if "cursor" not in query or "PageOut" not in body:
            continue
        parameters = {f"{where}.{name}": f"$request.{where}.{name}" for where, name in given}
        parameters["query.cursor"] = "$response.body#/next_cursor"
        pointer = path.replace("~", "~0").replace("/", "~1")
        ok.setdefault("links", {})["next_page"] = {
            "operationRef": f"#/paths/{pointer}/get",
            "parameters": parameters,
        }
    return spec


def seed_references(database: Database) -> None:
    """The objects the `REFERENCES` fields name, so that creations can succeed."""
    with database.transaction() as session:
        inventory.create_site(session, data=SiteCreate(name=SEEDED["site"]))
        inventory.create_rack(session, data=RackCreate(site=SEEDED["site"], name=SEEDED["rack"]))
        inventory.create_machine_class(session, data=MachineClassCreate(name=SEEDED["class"]))
        auth_service.create_team(session, data=TeamCreate(name=SEEDED["team"]))
        auth_service.create_project(
            session, data=ProjectCreate(name=SEEDED["project"], team=SEEDED["team"])
        )
        # A few more rows, so that short pages have a next one.
        for number in (2, 3):
            inventory.create_site(session, data=SiteCreate(name=f"{SEEDED['site']}-{number}"))
            inventory.create_machine_class(
                session, data=MachineClassCreate(name=f"{SEEDED['class']}-{number}")
            )
        actor = Actor(name="fuzz-seed", scope=Scope.ADMIN, user_id=None, token_id=None)
        for number in (1, 2, 3):
            inventory.create_asset(
                session,
                data=AssetCreate(
                    serial=f"FZ-{number:04}", site=SEEDED["site"], rack=SEEDED["rack"]
                ),
                actor=actor,
            )


@dataclass
class Identities:
    """The fixture users and tokens the fuzzer must not lock out, and how to restore them."""

    database: Database
    token_hashes: list[str]
    restored: int = 0

    def restore(self) -> None:
        with self.database.transaction() as session:
            for name, role in FIXTURE_ROLES.items():
                session.execute(
                    update(User).where(User.name == name).values(active=True, role=role)
                )
            session.execute(
                update(ApiToken)
                .where(ApiToken.secret_hash.in_(self.token_hashes))
                .values(revoked_at=None)
            )
        self.restored += 1


def as_served(app, crashes: list[tuple[str, BaseException]] | None = None):
    """The app as a real server runs it: a 5xx the app has sent is an answer, not a crash.

    Starlette re-raises an unhandled exception after sending the 500, for the server to log;
    uvicorn logs it and the client sees the 500. In-process, schemathesis would report the
    exception as an error of the test instead of checking the 500, so do what uvicorn does
    (the app's own handler has already logged the traceback; pytest shows it).
    """

    async def served(scope, receive, send) -> None:
        answered = False

        async def watch(message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, watch)
        except Exception as error:
            if not answered:
                raise
            if crashes is not None:
                crashes.append((f"{scope['method']} {scope['path']}", error))

    return served


def fuzz_schema_for(app, tokens, database: Database, **options: Any):
    """The app's OpenAPI schema, loaded in-process and set up for fuzzing (shared with bench)."""
    seed_references(database)
    secrets = [tokens.admin, tokens.write, tokens.read, tokens.other_write]
    identities = Identities(database, [auth_service.hash_token(s) for s in secrets])
    config = fuzz_config(
        app.openapi(),
        region=app.state.settings.region,
        write_token=tokens.write,
        admin_token=tokens.admin,
        **options,
    )
    crashes: list[tuple[str, BaseException]] = []
    # As schemathesis.openapi.from_asgi, on the app's own document plus the paging links.
    schema = schemathesis.openapi.from_dict(with_page_links(app.openapi()), config=config)
    schema.app = as_served(app, crashes)
    schema.location = "/openapi.json"

    def after_call(context, case, response) -> None:
        if case.method.upper() != "GET" and case.operation.path.startswith(LOCKOUT_PATHS):
            identities.restore()

    schema.hook("after_call")(after_call)
    schema.identities = identities
    schema.crashes = crashes  # bench/fuzz.py groups them by cause
    return schema


@pytest.fixture
def fuzz_schema(app, tokens, database):
    yield fuzz_schema_for(app, tokens, database)
    # A fuzzer that locked itself out would have tested little but the 401: if this fails, a
    # new operation can disable a user or revoke a token; add its path to LOCKOUT_PATHS.
    with database.transaction() as session:
        for secret in (tokens.write, tokens.admin):
            auth_service.authenticate_token(session, secret=secret)


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@schema.parametrize()
def test_every_operation_answers_as_documented(case):
    case.call_and_validate()


def test_linked_calls_answer_as_documented(app, tokens, database):
    """Chains of calls, each fed by an earlier answer (a created name or id).

    Run through schemathesis' engine rather than a bare Hypothesis state machine: the
    answers depend on what earlier examples left in the database, which the engine expects.
    """
    schema = fuzz_schema_for(
        app, tokens, database, phases=("stateful",), max_examples=STATEFUL_EXAMPLES
    )
    statistic = Statistic()
    problems = []
    for event in engine_for(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
            statistic.on_scenario_finished(event.recorder)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            problems.append(f"{event.label if hasattr(event, 'label') else ''}: {event}")
    failures = {
        label: [str(f.message) for group in groups.values() for f in group.failures]
        for label, groups in statistic.failures.items()
    }
    assert failures == {} and problems == []
    assert statistic.total_cases > 20  # the chains really ran
