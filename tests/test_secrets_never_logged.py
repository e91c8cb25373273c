"""A known BMC password travels every path of the BMC tests (API, CLI, SDK, drivers, worker);
with every logger of that run at DEBUG, it must appear in none of the logs."""

import subprocess
import sys
from pathlib import Path

from tests.peers.bmcs import BMC_PASSWORD

REPO = Path(__file__).resolve().parents[1]


def test_bmc_passwords_never_reach_a_log(tmp_path):
    log = tmp_path / "debug.log"
    run = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
            "tests/drivers", "tests/cli/test_drivers.py", "-k", "not postgresql",
            f"--log-file={log}", "--log-file-level=DEBUG", "-o", "log_level=DEBUG",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    logged = log.read_text()
    assert "sushy.connector" in logged and "HTTP request: POST" in logged  # logs were kept
    assert BMC_PASSWORD not in logged
    assert BMC_PASSWORD not in run.stdout + run.stderr
