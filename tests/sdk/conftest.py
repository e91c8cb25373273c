"""SDK fixtures: clients of the live server, and a transport that counts what it sends."""

from collections.abc import Callable, Iterator

import httpx
import pytest

from metalyard.sdk import Client
from tests.orchestrator.conftest import worker  # noqa: F401  (also registers test flows)


class CountingTransport(httpx.BaseTransport):
    """A real HTTP transport that records each request and can fail chosen ones."""

    def __init__(self, fail: Callable[[httpx.Request, int], str | None] | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[tuple[str, str]] = []
        self.fail = fail

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        when = self.fail(request, len(self.sent)) if self.fail else None
        if when == "before":  # the request never reaches the server
            raise httpx.ConnectError("connection refused (injected)", request=request)
        response = self.inner.handle_request(request)
        if when == "after":  # the server did the work, but its answer is lost
            response.close()
            raise httpx.ReadError("connection reset (injected)", request=request)
        return response

    def close(self) -> None:
        self.inner.close()

    def count(self, method: str, path: str | None = None) -> int:
        return sum(1 for m, p in self.sent if m == method and (path is None or p == path))


@pytest.fixture
def writer(live_server, tokens) -> Iterator[Client]:
    with Client(live_server, tokens.write) as client:
        yield client


@pytest.fixture
def admin_client(live_server, tokens) -> Iterator[Client]:
    with Client(live_server, tokens.admin) as client:
        yield client


@pytest.fixture
def rack(writer):
    writer.sites.create(name="dub1")
    return writer.racks.create(site="dub1", name="r01", mgmt_switch="sw1")
