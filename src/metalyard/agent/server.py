"""The agent's command port: metalyard asks a running agent to report, reboot or power off.

Two checks guard every request, in this order: the caller's address must be inside one of
the allowed networks (403 otherwise), and its ``X-Agent-Token`` must be the token
metalyard gave this agent at boot (401 otherwise). Errors have metalyard's own shape,
``{"code", "message", "details"}``.

Standard library only: this module runs in a minimal PXE image.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Agent-Token"
MAX_BODY = 64 * 1024
COMMANDS = ("report", "reboot", "poweroff")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> list[Network]:
    """CIDRs (IPv4 or IPv6; a bare address is one host) → networks; ValueError names the bad one."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {cidr!r} ({exc})") from None
    return networks


def address_allowed(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    # A dual-stack socket shows an IPv4 caller as ::ffff:a.b.c.d.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._dual_stack = host == "::"
        super().__init__((host, port), handler)

    def server_bind(self) -> None:
        if self._dual_stack:
            # Listen on IPv4 too, whatever the system default for v6-only sockets.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class CommandServer:
    """An HTTP server in a background thread; ``port=0`` picks a free one (see ``.port``)."""

    def __init__(
        self,
        *,
        host: str = "0.0.0.0",
        port: int,
        allowed_networks: Iterable[str],
        token: Callable[[], str | None],
        actions: Mapping[str, Callable[[], None]],
        status: Callable[[], Mapping[str, Any]],
    ) -> None:
        unknown = set(actions) - set(COMMANDS)
        if unknown:
            raise ValueError(f"unknown commands: {sorted(unknown)}")
        self.networks = parse_networks(allowed_networks)
        self._token = token
        self._actions = dict(actions)
        self._status = status
        self._httpd = _Server(host, port, self._handler_class())
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},  # how long stop() waits, at most
            name="agent-commands",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> CommandServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            owner = server

        return Handler


class _Handler(BaseHTTPRequestHandler):
    owner: CommandServer
    server_version = "metalyard-agent"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if not self._guard():
            return
        if self.path.split("?", 1)[0] != "/status":
            self._error(HTTPStatus.NOT_FOUND, "not_found", f"no such path: {self.path}")
            return
        self._send(HTTPStatus.OK, dict(self.owner._status()))

    def do_POST(self) -> None:
        if not self._guard():
            return
        if self.path.split("?", 1)[0] != "/command":
            self._error(HTTPStatus.NOT_FOUND, "not_found", f"no such path: {self.path}")
            return
        body = self._body()
        if body is None:
            return
        action = body.get("action")
        run = self.owner._actions.get(action) if isinstance(action, str) else None
        if run is None:
            known = sorted(self.owner._actions)
            self._error(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                "invalid_input",
                f"action must be one of {', '.join(known)}",
                {"action": action},
            )
            return
        # Answer first: after a reboot or a power off there is nobody left to answer.
        self._send(HTTPStatus.ACCEPTED, {"action": action, "accepted": True})
        log.info("metalyard at %s asked: %s", self.client_address[0], action)
        try:
            run()
        except Exception:
            log.exception("command %s failed", action)

    def _guard(self) -> bool:
        address = self.client_address[0]
        if not address_allowed(address, self.owner.networks):
            self._error(
                HTTPStatus.FORBIDDEN,
                "forbidden",
                f"{address} is not in the networks this agent takes commands from",
            )
            return False
        expected = self.owner._token()
        given = self.headers.get(TOKEN_HEADER, "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            self._error(
                HTTPStatus.UNAUTHORIZED, "unauthenticated", f"missing or wrong {TOKEN_HEADER}"
            )
            return False
        return True

    def _body(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", "body too large")
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._error(
                HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_input", "body must be a JSON object"
            )
            return None
        return body

    def _error(self, status: HTTPStatus, code: str, message: str, details: Any = None) -> None:
        self._send(status, {"code": code, "message": message, "details": details})

    def _send(self, status: HTTPStatus, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            # An unread request body would be taken for the next request.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes to stderr, over the console the engineer is reading.
        log.debug("%s " + format, self.client_address[0], *args)
