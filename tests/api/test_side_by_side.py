"""Several API processes on one database: writes interleave, nothing is lost, the chain holds."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.peers.postgres import free_port

WRITES_PER_PROCESS = 15


def start_api(url: str, port: int, data_dir: Path) -> subprocess.Popen:
    """One API process; all share the data directory, as they share the secret key (the
    audit log's MACs come from it)."""
    env = {
        **os.environ,
        "METALYARD_DATABASE_URL": url,
        "METALYARD_REGION": "side-by-side",
        "METALYARD_DATA_DIR": str(data_dir),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "metalyard.api.app:app_from_environment",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )


def wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/v1/region").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{base} did not come up")


def test_two_api_processes_write_side_by_side(database, tokens, tmp_path):
    ports = [free_port(), free_port()]
    processes = [start_api(database.url, port, tmp_path) for port in ports]
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base in bases:
            wait_until_up(base)
        headers = {"Authorization": f"Bearer {tokens.write}"}

        def write(index: int) -> list[int]:
            base = bases[index % 2]
            statuses = []
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                for n in range(WRITES_PER_PROCESS):
                    serial = f"P{index}-{n}"
                    statuses.append(http.post("/v1/assets", json={"serial": serial}).status_code)
                    statuses.append(
                        http.post(
                            f"/v1/assets/{serial}/transition",
                            json={"to": "EVALUATING", "reason": "x"},
                        ).status_code
                    )
            return statuses

        with ThreadPoolExecutor(4) as pool:
            results = [s for statuses in pool.map(write, range(4)) for s in statuses]
        assert set(results) == {200, 201}

        admin = {"Authorization": f"Bearer {tokens.admin}"}
        listed = httpx.get(
            f"{bases[1]}/v1/assets", params={"state": "EVALUATING", "limit": 1000}, headers=admin
        ).json()["items"]
        assert len(listed) == 4 * WRITES_PER_PROCESS
        verified = httpx.get(f"{bases[0]}/v1/audit/verify", headers=admin).json()
        # Every write, and the first process's claim of the new database for its key.
        entries = 1 + 2 * 4 * WRITES_PER_PROCESS
        assert verified == {"ok": True, "entries": entries, "problems": []}
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
