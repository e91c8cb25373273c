"""The one boundary between httpx and metalyard: auth, retries, pages, and errors mapped to ours.

Only GET and HEAD are retried: a POST whose answer was lost may already have been carried out,
and sending it again could enrol an asset twice or run a transition twice. And only what may
pass is retried: a connection error, a 503 or a 504. Never a 502: the server answers 502 when
a BMC refused the credentials or failed for good, and asking again only locks the BMC account
sooner (a load balancer's own 502 is not retried either, as its body cannot be told apart).
"""

import random
import ssl
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

import metalyard
from metalyard.errors import (
    ERRORS_BY_CODE,
    Conflict,
    Forbidden,
    InvalidInput,
    MetalyardError,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    ServerError,
    Unauthenticated,
    Unreachable,
    WrongRegion,
)
from metalyard.schemas import REGION_HEADER

M = TypeVar("M", bound=BaseModel)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})
RETRY_STATUSES = frozenset({503, 504})
BACKOFF_BASE = 0.1
"""Seconds before the first retry; doubles on each further one."""
BACKOFF_CAP = 5.0
DEFAULT_PAGE_SIZE = 100

ERRORS_BY_STATUS: dict[int, type[MetalyardError]] = {
    400: InvalidInput,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    421: WrongRegion,
    422: InvalidInput,
}

Verify = bool | str | Path
Params = Mapping[str, Any]

NEVER_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
)
"""Transport errors raised before the request left this machine: the server did nothing."""


class Http:
    """An httpx client bound to one region's base URL and token, and to its name if known."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        region: str | None = None,
        verify: Verify,
        timeout: float,
        retries: int,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.url = base_url(url)
        self.token = token
        self.region = region
        self.verify = verify
        self.timeout = timeout
        self.retries = max(0, retries)
        self._client = httpx.Client(
            base_url=self.url,
            verify=ssl_context(verify),
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"metalyard-sdk/{metalyard.__version__}"},
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        auth: tuple[str, str] | None = None,
        content: str | None = None,
        content_type: str = "text/plain",
        any_region: bool = False,
    ) -> httpx.Response:
        """Send one call; raise the metalyard error the answer stands for.

        The body is `json`, or `content` (text of `content_type`, e.g. a CSV file). The call
        names the client's region, if it has one, unless `any_region` (asking which it is).
        """
        headers = {}
        if auth is None and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.region is not None and not any_region:
            headers[REGION_HEADER] = self.region
        if content is not None:
            headers["Content-Type"] = content_type
        attempts = 1 + (self.retries if method in IDEMPOTENT_METHODS else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._client.request(
                    method,
                    path,
                    params=_query(params),
                    json=None if json is None else to_jsonable_python(json),
                    content=None if content is None else content.encode(),
                    headers=headers,
                    auth=auth or httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as error:
                if last:
                    raise self._unreachable(error, method, path) from error
                delay = backoff(attempt)
            else:
                if last or response.status_code not in RETRY_STATUSES:
                    break
                wait = _retry_after(response)
                delay = backoff(attempt) if wait is None else wait
            time.sleep(delay)
        if response.is_error:
            raise error_from(response)
        return response

    def get(self, path: str, model: type[M], *, params: Params | None = None) -> M:
        return parse(model, self.request("GET", path, params=params).json())

    def send(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        return parse(model, self.request(method, path, **kwargs).json())

    def pages(
        self,
        path: str,
        model: type[M],
        params: Params | None = None,
        page_size: int | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> "Listing[M]":
        return Listing(self, path, model, params, page_size, limit=limit, cursor=cursor)

    def _unreachable(self, error: httpx.TransportError, method: str, path: str) -> Unreachable:
        details = {"url": self.url, "error": type(error).__name__}
        reason = str(error) or type(error).__name__
        if method not in IDEMPOTENT_METHODS and not isinstance(error, NEVER_SENT):
            if isinstance(error, httpx.TimeoutException):
                lost = f"no answer from {self.url} within {self.timeout:g}s to {method} {path}"
            else:
                lost = (
                    f"the connection to {self.url} broke before the answer to {method} {path} "
                    f"came ({reason})"
                )
            return OutcomeUnknown(
                f"{lost}: the request may have been carried out; check before repeating it",
                details={**details, "method": method, "path": path, "outcome": "unknown"},
            )
        if isinstance(error, httpx.TimeoutException):
            message = f"no answer from {self.url} within {self.timeout:g}s"
        elif _tls_failure(error):
            checked = (
                f"the CA bundle {str(self.verify)!r}"
                if isinstance(self.verify, str | Path)
                else "the system's CA certificates"
            )
            message = (
                f"cannot reach {self.url}: {reason} (its certificate was checked against {checked})"
            )
            details = {**details, "tls": True, "verify": str(self.verify)}
        else:
            message = f"cannot reach {self.url}: {reason}"
        return Unreachable(message, details=details)


class Listing(Iterator[M]):
    """The items of a list from `cursor` on (at most `limit`; None for all), fetched a page
    at a time by following `next_cursor`.

    Once it is exhausted, `next_cursor` is where the list goes on: pass it as `cursor` to
    the same call for the items after these; None when no more exist. The last page asked
    for ends at the `limit`-th item, so that cursor skips none.
    """

    def __init__(
        self,
        http: Http,
        path: str,
        model: type[M],
        params: Params | None,
        page_size: int | None,
        *,
        limit: int | None,
        cursor: str | None,
    ) -> None:
        self.next_cursor = cursor
        self._items = self._walk(http, path, model, dict(params or {}), page_size, limit)

    def __next__(self) -> M:
        return next(self._items)

    def _walk(
        self,
        http: Http,
        path: str,
        model: type[M],
        query: dict[str, Any],
        page_size: int | None,
        limit: int | None,
    ) -> Iterator[M]:
        size = page_size or DEFAULT_PAGE_SIZE
        left = limit
        while left is None or left > 0:
            cursor = self.next_cursor
            wanted = size if left is None else min(size, left)
            answer = http.request("GET", path, params={**query, "limit": wanted, "cursor": cursor})
            page = answer.json()
            following = page.get("next_cursor")
            if following and following == cursor:
                raise ServerError(f"{path} gave the same next_cursor twice; stopping")
            for item in page["items"]:
                yield parse(model, item)
            # Only now: one who stops inside a page and goes on from here reads it again,
            # rather than missing the rest of it.
            self.next_cursor = following
            if not following:
                return
            if left is not None:
                left -= len(page["items"])


def base_url(url: str) -> str:
    """The server's root URL: `https://host:port`, with any trailing `/` or `/v1` removed."""
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(
            f"the URL must start with http:// or https://, not {url!r}", details={"url": url}
        )
    return url.rstrip("/").removesuffix("/v1")


def segment(value: str | int) -> str:
    """One path segment, escaped so a name can never step into another route."""
    text = str(value)
    if text in ("", ".", ".."):
        return text.replace(".", "%2E")
    return quote(text, safe="")


def body(data: BaseModel | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A request body from a schema instance, a dict, keyword arguments, or all of them."""
    if data is None:
        given: dict[str, Any] = {}
    elif isinstance(data, BaseModel):
        # Only what the caller set: on an update, a field left out must stay as it is.
        given = data.model_dump(mode="json", exclude_unset=True)
    elif isinstance(data, Mapping):
        given = dict(data)
    else:
        raise TypeError(f"expected a schema instance or a mapping, not {type(data).__name__}")
    return to_jsonable_python({**given, **fields})


def parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ServerError(
            f"the server's answer does not fit {model.__name__}: {error.errors()[0]['msg']}",
            details=error.errors(include_url=False, include_context=False),
        ) from None


def error_from(response: httpx.Response) -> MetalyardError:
    """The error the server raised, rebuilt from its {code, message, details} body."""
    status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        code, message, details = payload.get("code"), payload["message"], payload.get("details")
    else:  # not ours: a proxy or load balancer answered
        code, details = None, None
        message = f"HTTP {status} {response.reason_phrase} from {response.request.url}"
    cls = ERRORS_BY_CODE.get(code or "")
    if cls is None:
        cls = ServerError if status >= 500 else ERRORS_BY_STATUS.get(status, MetalyardError)
    error = cls(message, details=details)
    error.http_status = status  # type: ignore[attr-defined]
    error.request_id = response.headers.get("x-request-id", "")  # type: ignore[attr-defined]
    return error


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, so retrying clients do not march in step."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(BACKOFF_CAP, max(0.0, float(response.headers["retry-after"])))
    except (KeyError, ValueError):
        return None


def ssl_context(verify: Verify) -> ssl.SSLContext | bool:
    """What httpx checks the server's certificate with; a CA bundle is read here, once, so a
    file that holds no certificate is named now rather than failing every connection."""
    if isinstance(verify, bool):
        return verify
    path = Path(verify)
    if not path.is_file():
        raise InvalidInput(f"CA bundle {str(path)!r} is not a file", details={"verify": str(path)})
    try:
        return ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as error:
        raise InvalidInput(
            f"CA bundle {str(path)!r} is not a PEM file of CA certificates: {error}",
            details={"verify": str(path)},
        ) from None


def _tls_failure(error: BaseException) -> bool:
    """Whether the TLS handshake failed (httpx keeps the ssl error as a cause)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _query(params: Params | None) -> dict[str, Any] | None:
    if not params:
        return None
    query: dict[str, Any] = {}
    for key, value in params.items():
        if value is None or value == []:
            continue
        if isinstance(value, list | tuple):
            query[key] = [_scalar(v) for v in value]
        else:
            query[key] = _scalar(value)
    return query


def _scalar(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, str) else value
