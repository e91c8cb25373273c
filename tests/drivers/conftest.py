"""Hosts of an attacker's, for the tests that prove credentials never reach one."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Recorder(ThreadingHTTPServer):
    """Records every request that reaches it; answers each with `answer(handler)`."""

    def __init__(self, host: str, answer=lambda handler: handler.send_error(404)) -> None:
        self.seen: list[str] = []
        recorder = self

        class Record(BaseHTTPRequestHandler):
            def do_GET(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace")
                auth = self.headers.get("Authorization")
                recorder.seen.append(f"{self.command} {self.path} {auth} {body}")
                answer(self)

            do_POST = do_PATCH = do_DELETE = do_GET

            def log_message(self, *args):
                pass

        super().__init__((host, 0), Record)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/redfish/v1/Systems/1"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def rogue():
    """A host outside every network the tests allow (127.0.0.2)."""
    server = Recorder("127.0.0.2")
    yield server
    server.stop()


@pytest.fixture
def redirector(rogue):
    """A BMC inside the allowed networks (127.0.0.1) that sends every request to `rogue`."""

    def redirect(handler):
        handler.send_response(307)
        handler.send_header("Location", f"{rogue.base_url}{handler.path}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    server = Recorder("127.0.0.1", redirect)
    yield server
    server.stop()
