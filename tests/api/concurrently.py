"""Requests made at the same moment over real HTTP, each with its own connection."""

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

Call = tuple[str, str, Any]
"""Method, path and JSON body (None: no body)."""


def at_once(base_url: str, token: str, calls: list[Call]) -> list[tuple[int, str]]:
    """Make every call at once (threads released by one barrier); their statuses and bodies."""
    start = threading.Barrier(len(calls), timeout=30)

    def one(call: Call) -> tuple[int, str]:
        method, path, body = call
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
            http.get("/v1/whoami").raise_for_status()  # connected and authenticated before
            start.wait()
            response = http.request(method, path, json=body)
        return response.status_code, response.text

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(one, calls))


def all_answered(results: list[tuple[int, str]], status: int = 200) -> None:
    refused = [text for code, text in results if code != status]
    assert not refused, f"{len(refused)} of {len(results)} answered otherwise: {refused[:3]}"
