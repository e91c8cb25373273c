"""`metalyard lab` prints the command that adds its region on one line, outside any box."""

import os
import subprocess
import sys


def test_lab_prints_the_region_add_command_whole_on_a_narrow_terminal(tmp_path):
    environment = {**os.environ, "COLUMNS": "60", "METALYARD_CONFIG": str(tmp_path / "c.yaml")}
    options = ["--servers", "1", "--faults", "0", "--no-wait", "--no-live", "--timeout", "120"]
    lab = subprocess.run(
        [sys.executable, "-m", "metalyard.cli", "lab", *options, "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert lab.returncode == 0, lab.stdout + lab.stderr
    commands = [line for line in lab.stdout.splitlines() if line.startswith("metalyard region")]
    assert len(commands) == 1, lab.stdout
    words = commands[0].split()
    assert words[:5] == ["metalyard", "region", "add", "lab", "--url"]
    assert words[6] == "--token" and words[7].startswith("my_") and len(words) == 8
