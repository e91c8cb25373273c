"""A host of the attacker's, for the tests that prove credentials never reach one."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def rogue():
    """A host that records whatever reaches it, as one a user could point an asset's BMC
    address at to catch the credential."""
    seen: list[str] = []

    class Record(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(f"{self.command} {self.path} {self.headers.get('Authorization')}")
            self.send_error(404)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Record)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.seen = seen
    server.url = f"http://127.0.0.1:{server.server_port}/redfish/v1/Systems/1"
    yield server
    server.shutdown()
    server.server_close()
