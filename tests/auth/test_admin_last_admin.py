"""Someone must always be able to administer: the last active admin stays one, and whoever
runs the server can make a new one when nobody can log in."""

import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from metalyard.auth import service
from metalyard.auth.actor import Actor
from metalyard.auth.audit.models import AuditEntry
from metalyard.auth.models import User
from metalyard.auth.schemas import UserCreate, UserUpdate
from metalyard.auth.scopes import Scope
from metalyard.errors import Conflict


def test_the_last_admin_cannot_disable_or_demote_themselves(admin):
    for change in ({"active": False}, {"role": "write"}, {"role": "read", "active": False}):
        refused = admin.patch("/v1/users/admin", json=change)
        assert refused.status_code == 409, change
        assert refused.json()["message"] == (
            "user 'admin' is the last active admin: make another user admin first"
        )
    assert admin.get("/v1/users/admin").json()["active"] is True
    assert admin.patch("/v1/users/admin", json={"email": "ops@example.com"}).status_code == 200


def test_with_a_second_admin_the_first_may_step_down_but_not_both(admin):
    admin.post("/v1/users", json={"name": "ada", "role": "admin"}).raise_for_status()
    disabled = admin.patch("/v1/users/wanda", json={"active": False})  # not an admin: no limit
    assert disabled.status_code == 200
    assert admin.patch("/v1/users/admin", json={"role": "write"}).status_code == 200
    # Its admin token now carries no more than its new role.
    assert admin.patch("/v1/users/ada", json={"active": False}).status_code == 403


def test_a_disabled_admin_does_not_count(admin):
    admin.post("/v1/users", json={"name": "ada", "role": "admin"}).raise_for_status()
    admin.patch("/v1/users/ada", json={"active": False}).raise_for_status()
    assert admin.patch("/v1/users/admin", json={"active": False}).status_code == 409


def test_two_admins_disabling_each_other_at_once_leave_one(database, tokens):
    with database.transaction() as session:
        service.create_user(session, data=UserCreate(name="ada", role=Scope.ADMIN))
    outcome: list[str] = []

    def disable_admin():
        try:
            with database.transaction() as session:
                service.update_user(session, name="admin", data=UserUpdate(active=False))
            outcome.append("disabled admin")
        except Conflict:
            outcome.append("refused")

    with database.transaction() as session:
        service.update_user(session, name="ada", data=UserUpdate(active=False))
        other = threading.Thread(target=disable_admin)
        other.start()
        time.sleep(0.5)  # the other one is now waiting for this transaction
    other.join(timeout=30)
    assert outcome == ["refused"]
    with database.transaction() as session:
        active = session.scalars(select(User.name).where(User.active.is_(True))).all()
    assert "admin" in active and "ada" not in active


# Recovery ------------------------------------------------------------------------------


def test_recovery_re_enables_an_admin_with_a_new_token_and_is_audited(
    app, settings, database, tokens
):
    with database.transaction() as session:
        user = service.get_user(session, name="admin")
        user.active = False  # locked out by hand, as a broken deployment could be
    actor = Actor.system("recover-admin")
    with database.transaction() as session:
        user, secret = service.recover_admin(session, name="admin", actor=actor, settings=settings)
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as recovered:
        me = recovered.get("/v1/whoami").json()
        assert (me["user"], me["scope"]) == ("admin", "admin")
        entries = recovered.get("/v1/audit", params={"action": "recover_admin"}).json()["items"]
    assert [(e["actor"], e["target"], e["status"]) for e in entries] == [
        ("system:recover-admin", "users/admin", 200)
    ]
    assert entries[0]["summary"] == {
        "before": {"role": "admin", "active": False},
        "token_id": me["token_id"],
    }


def test_recovery_promotes_or_creates_the_named_user(settings, database, tokens):
    actor = Actor.system("recover-admin")
    with database.transaction() as session:
        promoted, _ = service.recover_admin(session, name="rita", actor=actor, settings=settings)
        created, _ = service.recover_admin(session, name="newadmin", actor=actor, settings=settings)
        assert (promoted.role, created.role, created.active) == (Scope.ADMIN, Scope.ADMIN, True)
        statuses = session.scalars(
            select(AuditEntry.status).where(AuditEntry.action == "recover_admin")
        ).all()
    assert statuses == [200, 201]
