"""Tokens: scoped, expiring, hashed at rest, shown once; the sudo way to a write token."""

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from metalyard.auth.models import ApiToken


@pytest.fixture
def reader(app, tokens):
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.read}"}) as c:
        yield c


@pytest.fixture
def sam(admin):
    """A writer who works with a read token and has a password for the rest."""
    admin.post(
        "/v1/users", json={"name": "sam", "role": "write", "password": "correct horse battery"}
    ).raise_for_status()
    return ("sam", "correct horse battery")


def test_a_token_is_shown_once_and_stored_only_as_a_hash(app, sam, database):
    with TestClient(app) as anonymous:
        created = anonymous.post("/v1/tokens", json={"scope": "read"}, auth=sam)
    assert created.status_code == 201
    secret = created.json()["token"]
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as client:
        listed = client.get("/v1/tokens").json()["items"]
        assert [t["id"] for t in listed] == [created.json()["id"]]
        assert all("token" not in t and "secret_hash" not in t for t in listed)
        assert secret not in client.get("/v1/tokens").text
    with database.transaction() as session:
        stored = session.scalars(select(ApiToken.secret_hash)).all()
    assert secret not in stored and all(len(h) == 64 for h in stored)


def test_a_read_token_cannot_mint_a_write_token(app, sam):
    with TestClient(app) as anonymous:
        read = anonymous.post("/v1/tokens", json={"scope": "read"}, auth=sam).json()["token"]
    with TestClient(app, headers={"Authorization": f"Bearer {read}"}) as client:
        refused = client.post("/v1/tokens", json={"scope": "write"})
    assert refused.status_code == 403
    assert "scope read" in refused.json()["message"]


def test_password_mints_a_short_lived_write_token_up_to_the_users_role(app, sam):
    with TestClient(app) as anonymous:
        write = anonymous.post("/v1/tokens", json={"scope": "write", "expires_in": 900}, auth=sam)
        admin = anonymous.post("/v1/tokens", json={"scope": "admin"}, auth=sam)
        wrong = anonymous.post("/v1/tokens", json={"scope": "read"}, auth=("sam", "nope-nope-nope"))
    assert write.status_code == 201
    expires = dt.datetime.fromisoformat(write.json()["expires_at"])
    assert (
        dt.timedelta(seconds=890) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=900)
    )
    assert admin.status_code == 403 and "role write" in admin.json()["message"]
    assert wrong.status_code == 401
    with TestClient(app, headers={"Authorization": f"Bearer {write.json()['token']}"}) as client:
        assert client.post("/v1/sites", json={"name": "dub1"}).status_code == 201


def test_password_only_opens_token_creation(app, sam):
    with TestClient(app) as anonymous:
        assert anonymous.get("/v1/assets", auth=sam).status_code == 401


def test_an_expired_token_is_refused_saying_so(app, sam, database):
    with TestClient(app) as anonymous:
        token = anonymous.post("/v1/tokens", json={"scope": "read", "expires_in": 60}, auth=sam)
    with database.transaction() as session:
        row = session.get(ApiToken, token.json()["id"])
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token.json()['token']}"}) as client:
        response = client.get("/v1/assets")
    assert response.status_code == 401 and "expired" in response.json()["message"]


def test_a_revoked_token_stops_working(reader, tokens):
    mine = reader.get("/v1/tokens").json()["items"][0]
    assert reader.delete(f"/v1/tokens/{mine['id']}").json()["revoked_at"] is not None
    response = reader.get("/v1/assets")
    assert response.status_code == 401 and "revoked" in response.json()["message"]


def test_a_user_cannot_revoke_someone_elses_token(reader, admin):
    theirs = admin.get("/v1/tokens").json()["items"][0]
    assert reader.delete(f"/v1/tokens/{theirs['id']}").status_code == 404
    assert admin.get("/v1/whoami").status_code == 200


def test_a_disabled_user_is_locked_out(admin, reader):
    admin.patch("/v1/users/rita", json={"active": False}).raise_for_status()
    response = reader.get("/v1/assets")
    assert response.status_code == 401 and "disabled" in response.json()["message"]


def test_whoami_tells_user_and_scope(reader):
    assert reader.get("/v1/whoami").json()["user"] == "rita"
    assert reader.get("/v1/whoami").json()["scope"] == "read"


def test_bootstrap_happens_once_even_when_two_servers_start_together(database):
    """The second server's bootstrap runs while the first one's is not yet committed."""
    import threading
    import time

    from metalyard.auth import service as auth_service

    second: list[str | None] = []

    def start_second_server():
        with database.transaction() as session:
            second.append(auth_service.bootstrap(session))

    with database.transaction() as session:
        first = auth_service.bootstrap(session)
        other = threading.Thread(target=start_second_server)
        other.start()
        time.sleep(0.5)  # the second server is now waiting on the first one's admin row
    other.join(timeout=30)
    assert first.startswith("my_") and second == [None]


def test_admin_is_spelt_with_an(app, sam):
    with TestClient(app) as anonymous:
        refused = anonymous.post("/v1/tokens", json={"scope": "admin"}, auth=sam)
    assert refused.json()["message"].startswith("cannot create an admin token: ")


# What a 403 tells the caller to do must work for them ---------------------------------


def test_a_403_gives_a_reader_by_role_no_command_that_cannot_work(reader):
    refused = reader.post("/v1/sites", json={"name": "dub1"})
    assert refused.status_code == 403
    message = refused.json()["message"]
    assert "token create" not in message
    assert "Your role (read) does not allow it: an admin must grant the role" in message
    assert "metalyard user update rita --role write" in message
    assert refused.json()["details"] == {"needed": "write", "have": "read", "role": "read"}


def test_a_403_tells_a_writer_with_a_password_the_command_that_works(app, sam):
    with TestClient(app) as anonymous:
        read = anonymous.post("/v1/tokens", json={"scope": "read"}, auth=sam).json()["token"]
    with TestClient(app, headers={"Authorization": f"Bearer {read}"}) as client:
        refused = client.post("/v1/sites", json={"name": "dub1"})
        above = client.get("/v1/audit/verify")
    assert refused.status_code == 403
    assert (
        "Your role (write) allows it: metalyard token create --scope write "
        in (refused.json()["message"])
    )
    assert refused.json()["message"].endswith(" --password")
    assert above.status_code == 403
    assert "token create" not in above.json()["message"]
    assert "metalyard user update sam --role admin" in above.json()["message"]


def test_a_403_tells_an_admin_without_password_how_else(admin):
    """The bootstrap admin has no password: --password would fail for them."""
    read = admin.post("/v1/tokens", json={"scope": "read"}).json()["token"]
    admin.headers["Authorization"] = f"Bearer {read}"
    refused = admin.get("/v1/audit/verify")
    assert refused.status_code == 403
    message = refused.json()["message"]
    assert "--password" not in message.split("no password")[0]
    assert "Your role (admin) allows it, but you have no password" in message
    assert "metalyard user update admin --password" in message


# A refused token still names its user in the audit log --------------------------------


def denied(admin) -> list[tuple[str, int | None, int]]:
    entries = admin.get("/v1/audit", params={"outcome": "denied"}).json()["items"]
    return [(e["actor"], e["token_id"], e["status"]) for e in entries]


def test_a_revoked_or_expired_token_is_logged_with_its_user(app, admin, reader, sam, database):
    mine = reader.get("/v1/tokens").json()["items"][0]["id"]
    reader.delete(f"/v1/tokens/{mine}").raise_for_status()
    assert reader.post("/v1/sites", json={"name": "dub1"}).status_code == 401
    with TestClient(app) as anonymous:
        expiring = anonymous.post("/v1/tokens", json={"expires_in": 60}, auth=sam).json()
    with database.transaction() as session:
        row = session.get(ApiToken, expiring["id"])
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with TestClient(app, headers={"Authorization": f"Bearer {expiring['token']}"}) as expired:
        assert expired.post("/v1/sites", json={"name": "dub1"}).status_code == 401
    with TestClient(app, headers={"Authorization": "Bearer my_unknown"}) as stranger:
        assert stranger.post("/v1/sites", json={"name": "dub1"}).status_code == 401
    assert denied(admin) == [("", None, 401), ("sam", expiring["id"], 401), ("rita", mine, 401)]


def test_a_disabled_users_calls_are_logged_with_their_name(app, admin, reader, sam):
    rita_token = reader.get("/v1/tokens").json()["items"][0]["id"]
    for name in ("rita", "sam"):
        admin.patch(f"/v1/users/{name}", json={"active": False}).raise_for_status()
    assert reader.post("/v1/sites", json={"name": "dub1"}).status_code == 401
    with TestClient(app) as anonymous:
        refused = anonymous.post("/v1/tokens", json={"scope": "read"}, auth=sam)
        wrong = anonymous.post("/v1/tokens", json={"scope": "read"}, auth=("sam", "not-the-one"))
    assert refused.status_code == 401 and "disabled" in refused.json()["message"]
    assert wrong.status_code == 401
    assert denied(admin) == [("", None, 401), ("sam", None, 401), ("rita", rita_token, 401)]
