"""The command port takes commands only from metalyard's networks, with the agent's token."""

import json
import socket
import threading
import urllib.error
import urllib.request

import pytest

from metalyard.agent.server import CommandServer, address_allowed, parse_networks

TOKEN = "s3cret-token"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(server, method, path, *, token=None, body=None, host="127.0.0.1"):
    headers = {} if token is None else {"X-Agent-Token": token}
    data = None if body is None else json.dumps(body).encode()
    url = f"http://{host}:{server.port}{path}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with NO_PROXY.open(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def ran():
    return {name: threading.Event() for name in ("report", "reboot", "poweroff")}


@pytest.fixture
def serve(ran):
    servers = []

    def start(allowed, *, host="127.0.0.1", token=TOKEN):
        server = CommandServer(
            host=host,
            port=0,
            allowed_networks=allowed,
            token=lambda: token,
            actions={name: event.set for name, event in ran.items()},
            status=lambda: {"serial": "SRV-1", "state": "EVALUATING"},
        )
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_command_from_outside_the_allowed_networks_is_refused(serve, ran):
    server = serve(["10.0.0.0/8", "fd00::/8"])
    status, body = call(server, "POST", "/command", token=TOKEN, body={"action": "poweroff"})
    assert status == 403
    assert body["code"] == "forbidden" and "127.0.0.1" in body["message"]
    assert call(server, "GET", "/status", token=TOKEN)[0] == 403
    assert not ran["poweroff"].is_set()


def test_missing_or_wrong_token_is_refused(serve, ran):
    server = serve(["127.0.0.0/8"])
    for token in (None, "", "wrong", TOKEN + "x"):
        status, body = call(server, "POST", "/command", token=token, body={"action": "reboot"})
        assert (status, body["code"]) == (401, "unauthenticated")
    assert call(server, "GET", "/status")[0] == 401
    assert not ran["reboot"].is_set()


def test_no_token_yet_refuses_everyone(serve, ran):
    server = serve(["127.0.0.1/32"], token=None)
    assert call(server, "POST", "/command", token="", body={"action": "report"})[0] == 401
    assert not ran["report"].is_set()


@pytest.mark.parametrize("action", ["report", "reboot", "poweroff"])
def test_right_token_runs_the_action(serve, ran, action):
    server = serve(["127.0.0.1/32"])
    status, body = call(server, "POST", "/command", token=TOKEN, body={"action": action})
    assert (status, body) == (202, {"action": action, "accepted": True})
    assert ran[action].wait(5)
    assert not any(event.is_set() for name, event in ran.items() if name != action)


def test_status_answers_the_agent_status(serve):
    server = serve(["127.0.0.0/8"])
    assert call(server, "GET", "/status", token=TOKEN) == (
        200,
        {"serial": "SRV-1", "state": "EVALUATING"},
    )


def test_unknown_action_and_path(serve, ran):
    server = serve(["127.0.0.0/8"])
    status, body = call(server, "POST", "/command", token=TOKEN, body={"action": "wipe"})
    assert (status, body["code"], body["details"]) == (422, "invalid_input", {"action": "wipe"})
    assert call(server, "POST", "/command", token=TOKEN, body=["report"])[0] == 422
    assert call(server, "POST", "/elsewhere", token=TOKEN, body={"action": "report"})[0] == 404
    assert not any(event.is_set() for event in ran.values())


def test_ipv6_networks_parse():
    networks = parse_networks(["2001:db8:40::/48", "10.20.0.0/16", "fd00::7"])
    assert [str(n) for n in networks] == ["2001:db8:40::/48", "10.20.0.0/16", "fd00::7/128"]
    assert address_allowed("2001:db8:40::1234", networks)
    assert not address_allowed("2001:db8:41::1", networks)
    assert address_allowed("fd00::7", networks) and not address_allowed("fd00::8", networks)
    # An IPv4 caller on a dual-stack socket, and a link-local caller with its zone.
    assert address_allowed("::ffff:10.20.3.4", networks)
    assert address_allowed("fe80::1%eth0", parse_networks(["fe80::/10"]))
    assert not address_allowed("10.21.0.1", networks)
    with pytest.raises(ValueError, match="2001:db8::/129"):
        parse_networks(["10.0.0.0/8", "2001:db8::/129"])


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_caller_inside_an_ipv6_network(serve, ran):
    server = serve(["::1/128"], host="::1")
    status, _ = call(
        server, "POST", "/command", token=TOKEN, body={"action": "report"}, host="[::1]"
    )
    assert status == 202 and ran["report"].wait(5)
    refused = serve(["2001:db8::/32"], host="::1")
    assert call(refused, "GET", "/status", token=TOKEN, host="[::1]")[0] == 403
