"""Users, teams and projects changed at once without a version: every change applies."""

import json

from sqlalchemy import select

from metalyard.auth.models import User
from tests.api.concurrently import all_answered, at_once

WRITERS = 10


def test_team_project_and_user_updates_at_once_all_apply(admin, live_server, tokens):
    admin.post("/v1/teams", json={"name": "infra"}).raise_for_status()
    admin.post("/v1/projects", json={"name": "batch", "team": "infra"}).raise_for_status()
    calls = [
        *(("PATCH", "/v1/teams/infra", {"description": f"d{i}"}) for i in range(WRITERS)),
        *(("PATCH", "/v1/projects/batch", {"description": f"d{i}"}) for i in range(WRITERS)),
        *(("PATCH", "/v1/users/rita", {"email": f"r{i}@example.com"}) for i in range(WRITERS)),
    ]
    all_answered(at_once(live_server, tokens.admin, calls))
    for path in ("/v1/teams/infra", "/v1/projects/batch", "/v1/users/rita"):
        assert admin.get(path).json()["version"] == 1 + WRITERS, path


def test_two_admins_disabling_each_other_at_the_same_moment_leave_one(
    admin, live_server, tokens, database
):
    """Each locks the admins before the user it changes: neither waits for the other for
    ever, and the second finds the first no longer an admin to lean on."""
    admin.post("/v1/users", json={"name": "ada", "role": "admin"}).raise_for_status()
    calls = [("PATCH", f"/v1/users/{name}", {"active": False}) for name in ("ada", "admin")]
    results = at_once(live_server, tokens.admin, calls)
    codes = sorted(str(json.loads(text).get("code", code)) for code, text in results)
    # The second is refused: for leaving no admin, or, when "admin" was disabled before the
    # second call (made with admin's token) was even authenticated, for that.
    assert codes in (["200", "conflict"], ["200", "unauthenticated"]), results
    with database.transaction(write=False) as session:
        active = session.scalars(select(User.name).where(User.active.is_(True))).all()
    assert len({"ada", "admin"} & set(active)) == 1


def test_deleting_a_team_at_once_deletes_it_once(admin, live_server, tokens):
    admin.post("/v1/teams", json={"name": "infra"}).raise_for_status()
    results = at_once(live_server, tokens.admin, [("DELETE", "/v1/teams/infra", None)] * 4)
    assert sorted(code for code, _ in results) == [204, 404, 404, 404]
