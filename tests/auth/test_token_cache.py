"""Valid tokens are trusted a few seconds without SQL; a revoke here takes effect at once."""

import datetime as dt
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from metalyard.auth import service as auth_service
from metalyard.auth.models import ApiToken
from metalyard.auth.scopes import Scope
from metalyard.auth.service import TokenCache, TokenHolder


@contextmanager
def token_lookups(database):
    seen = []

    def record(conn, cursor, statement, *args):
        if "FROM api_tokens" in statement:
            seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", record)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(auth_service.token_cache, "clock", clock)
    return clock


@pytest.fixture
def reader(app, tokens):
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.read}"}) as client:
        yield client


def test_a_token_is_looked_up_once_then_trusted_for_a_few_seconds(reader, database, clock):
    with token_lookups(database) as lookups:
        assert reader.get("/v1/whoami").status_code == 200
        assert reader.get("/v1/whoami").status_code == 200
        assert len(lookups) == 1
        clock.now += auth_service.TOKEN_CACHE_SECONDS
        assert reader.get("/v1/whoami").status_code == 200
        assert len(lookups) == 2


def test_a_revoke_through_this_process_takes_effect_at_once(reader, clock):
    mine = reader.get("/v1/tokens").json()["items"][0]
    assert reader.delete(f"/v1/tokens/{mine['id']}").status_code == 200
    response = reader.get("/v1/whoami")
    assert response.status_code == 401 and "revoked" in response.json()["message"]


def test_a_revoke_by_another_process_takes_effect_within_the_cache_time(reader, database, clock):
    assert reader.get("/v1/whoami").status_code == 200
    with database.transaction() as session:  # as another API process would
        session.execute(update(ApiToken).values(revoked_at=dt.datetime.now(dt.UTC)))
    assert reader.get("/v1/whoami").status_code == 200
    clock.now += auth_service.TOKEN_CACHE_SECONDS
    response = reader.get("/v1/whoami")
    assert response.status_code == 401 and "revoked" in response.json()["message"]


def test_disabling_a_user_here_locks_out_their_cached_tokens_at_once(admin, reader, clock):
    assert reader.get("/v1/whoami").status_code == 200
    admin.patch("/v1/users/rita", json={"active": False}).raise_for_status()
    response = reader.get("/v1/whoami")
    assert response.status_code == 401 and "disabled" in response.json()["message"]


def test_a_token_expiring_while_trusted_is_refused_when_it_expires(app, tokens, database, clock):
    with database.transaction() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.secret_hash == auth_service.hash_token(tokens.read))
            .values(expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
        )
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.read}"}) as reader:
        assert reader.get("/v1/whoami").status_code == 200
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(auth_service, "utcnow", lambda: later)
            response = reader.get("/v1/whoami")
    assert response.status_code == 401 and "expired" in response.json()["message"]


def test_a_lookup_that_raced_a_revoke_is_not_kept():
    cache = TokenCache(ttl=60)
    holder = TokenHolder(user_id=1, user_name="u", token_id=7, scope=Scope.READ, expires_at=None)
    generation = cache.generation  # a lookup starts, reads the token as still valid...
    cache.forget(lambda h: h.token_id == 7)  # ...while a revoke commits
    cache.put(("db", "hash"), holder, generation)
    assert cache.get(("db", "hash")) is None
    cache.put(("db", "hash"), holder, cache.generation)
    assert cache.get(("db", "hash")) == holder
