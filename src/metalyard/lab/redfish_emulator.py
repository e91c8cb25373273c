"""sushy-tools' Redfish emulator (fake-system mode), extended where that mode falls short:
the BMCs of `metalyard lab --redfish`, and the tests' Redfish peer.

Run as `python -m metalyard.lab.redfish_emulator CONFIG PORT`. Added to the stock emulator:
- systems with BIOS attributes, firmware versions (so SimpleUpdate completes) and, with
  `METALYARD_INSTANT_POWER = True` in the config, power changes that land at once;
- with `METALYARD_POWER_HOOK = URL`, each boot and power-off is posted there as
  `{"uuid", "booted"}`: the lab's simulated server listens, as a motherboard to its BMC;
- a SessionService with a session limit (`METALYARD_MAX_SESSIONS`) answering 503
  SessionLimitExceeded as BMCs do; every other resource needs a session or basic auth
  (`METALYARD_USERS = {name: password}`);
- a LogService per system, and `/_control/...` endpoints with which tests inject 5xx
  bursts, add event log entries and read which sessions are open.
"""

import itertools
import secrets
import sys
import threading
from datetime import UTC, datetime

import flask
import requests
from sushy_tools.emulator import main as emulator
from sushy_tools.emulator.resources.systems import fakedriver
from sushy_tools.emulator.resources.systems.fakedriver import FakeDriver

SESSION_LIMIT_EXCEEDED = "Base.1.8.SessionLimitExceeded"


class LabSystems(FakeDriver):
    """Fake systems with the resources real servers have and the stock fake lacks."""

    def set_power_state(self, identity, state):
        was_on = self.get_power_state(identity) == "On"
        super().set_power_state(identity, state)
        if self._config.get("METALYARD_INSTANT_POWER"):
            system = self._get(identity)
            pending = system.get("pending_power")
            if pending:
                pending["apply_time"] = 0
                self._update_if_needed(system)
        hook = self._config.get("METALYARD_POWER_HOOK")
        is_on = self.get_power_state(identity) == "On"
        if hook and ("Restart" in state or was_on != is_on):
            body = {"uuid": self.uuid(identity), "booted": is_on}
            requests.post(hook, json=body, timeout=10).raise_for_status()

    def get_total_memory(self, identity):
        return self._get(identity).get("memory_gib", 256)

    def get_total_cpus(self, identity):
        return self._get(identity).get("cpus", 2)

    def get_versions(self, identity):
        return self._get(identity).get("versions", {"BiosVersion": "1.0.0"})

    def set_versions(self, identity, firmware_versions):
        system = self._get(identity)
        self._update(system, versions={**self.get_versions(identity), **firmware_versions})

    def get_bios(self, identity):
        defaults = {"BootMode": "Uefi", "ProcTurboMode": "Enabled", "EmbeddedSata": "Raid"}
        return self._get(identity).get("bios", defaults)

    def set_bios(self, identity, attributes):
        system = self._get(identity)
        self._update(system, bios={**self.get_bios(identity), **attributes})

    def reset_bios(self, identity):
        self._update(identity, bios=None)

    def get_events(self, identity):
        return self._get(identity).get("events", [])

    def set_events(self, identity, events):
        self._update(identity, events=events)


fakedriver.FakeDriver = LabSystems
app = emulator.app

_lock = threading.Lock()
_sessions: dict[str, dict] = {}
_session_ids = itertools.count(1)
_faults = {"status": 0, "count": 0}


def _error(status: int, code: str, message: str):
    body = {"error": {"code": code, "message": message, "@Message.ExtendedInfo": []}}
    return flask.jsonify(body), status


def _users() -> dict[str, str]:
    return app.config.get("METALYARD_USERS") or {}


@app.before_request
def _guard():
    path = flask.request.path.rstrip("/")
    if path.startswith("/_control") or path in ("", "/redfish", "/redfish/v1"):
        return None
    if path == "/redfish/v1/SessionService/Sessions" and flask.request.method == "POST":
        return None
    if path.startswith("/redfish/v1/Systems") and _take_fault():
        return _error(_faults["status"], "Base.1.8.InternalError", "injected failure")
    token = flask.request.headers.get("X-Auth-Token")
    if token:
        with _lock:
            if token in _sessions:
                return None
    basic = flask.request.authorization
    if basic and _users().get(basic.username) == basic.password:
        return None
    return _error(401, "Base.1.8.NoValidSession", "no valid session or credentials")


def _take_fault() -> bool:
    with _lock:
        if _faults["count"] <= 0:
            return False
        _faults["count"] -= 1
        return True


@app.after_request
def _advertise_sessions(response):
    if flask.request.path.rstrip("/") == "/redfish/v1" and response.is_json:
        root = response.get_json()
        root["SessionService"] = {"@odata.id": "/redfish/v1/SessionService"}
        root["Links"] = {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}
        response.set_data(flask.json.dumps(root))
    return response


@app.route("/redfish/v1/SessionService", methods=["GET"])
def session_service():
    return flask.jsonify(
        {
            "@odata.id": "/redfish/v1/SessionService",
            "@odata.type": "#SessionService.v1_1_8.SessionService",
            "Id": "SessionService",
            "Name": "Session Service",
            "ServiceEnabled": True,
            "SessionTimeout": 1800,
            "Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"},
        }
    )


@app.route("/redfish/v1/SessionService/Sessions", methods=["GET", "POST"])
def sessions():
    if flask.request.method == "GET":
        with _lock:
            members = [{"@odata.id": s["@odata.id"]} for s in _sessions.values()]
        return flask.jsonify({"Members": members, "Members@odata.count": len(members)})
    body = flask.request.get_json(force=True, silent=True) or {}
    name, password = body.get("UserName"), body.get("Password")
    if _users().get(name) != password:
        return _error(401, "Base.1.8.NoValidSession", "invalid user name or password")
    with _lock:
        if len(_sessions) >= app.config.get("METALYARD_MAX_SESSIONS", 16):
            return _error(
                503,
                SESSION_LIMIT_EXCEEDED,
                "The session establishment failed due to the number of simultaneous "
                "sessions exceeding the limit of the implementation.",
            )
        ident = str(next(_session_ids))
        token = secrets.token_hex(16)
        session = {
            "@odata.id": f"/redfish/v1/SessionService/Sessions/{ident}",
            "Id": ident,
            "UserName": name,
        }
        _sessions[token] = session
    response = flask.jsonify(session)
    response.status_code = 201
    response.headers["X-Auth-Token"] = token
    response.headers["Location"] = session["@odata.id"]
    return response


@app.route("/redfish/v1/SessionService/Sessions/<ident>", methods=["GET", "DELETE"])
def session(ident):
    with _lock:
        token = next((t for t, s in _sessions.items() if s["Id"] == ident), None)
        if token is None:
            return _error(404, "Base.1.8.ResourceMissingAtURI", "no such session")
        if flask.request.method == "DELETE":
            del _sessions[token]
            return "", 204
        return flask.jsonify(_sessions[token])


@app.route("/redfish/v1/Systems/<identity>/LogServices", methods=["GET"])
def log_services(identity):
    app.systems.uuid(identity)
    base = f"/redfish/v1/Systems/{identity}/LogServices"
    return flask.jsonify({"@odata.id": base, "Members": [{"@odata.id": f"{base}/Log"}]})


@app.route("/redfish/v1/Systems/<identity>/LogServices/Log/Entries", methods=["GET"])
def log_entries(identity):
    entries = app.systems.get_events(identity)
    return flask.jsonify({"Members": entries, "Members@odata.count": len(entries)})


@app.route(
    "/redfish/v1/Systems/<identity>/LogServices/Log/Actions/LogService.ClearLog",
    methods=["POST"],
)
def clear_log(identity):
    app.systems.set_events(identity, [])
    return "", 204


@app.route("/_control/faults", methods=["POST"])
def inject_faults():
    body = flask.request.get_json(force=True)
    with _lock:
        _faults.update(status=int(body["status"]), count=int(body["count"]))
    return "", 204


@app.route("/_control/events/<identity>", methods=["POST"])
def add_event(identity):
    body = flask.request.get_json(force=True)
    events = app.systems.get_events(identity)
    entry = {
        "Id": str(len(events) + 1),
        "Created": datetime.now(UTC).isoformat(),
        "Severity": body.get("severity", "Warning"),
        "Message": body["message"],
    }
    app.systems.set_events(identity, [*events, entry])
    return "", 204


@app.route("/_control/sessions", methods=["GET"])
def open_sessions():
    with _lock:
        return flask.jsonify([s["UserName"] for s in _sessions.values()])


if __name__ == "__main__":
    sys.argv = ["sushy-emulator", "--config", sys.argv[1], "-i", "127.0.0.1", "-p", sys.argv[2]]
    emulator.main()
