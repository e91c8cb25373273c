"""Flow, run, pool and signal commands against a live server and a real worker."""

import json
import time

import yaml

from metalyard.cli import parsing
from metalyard.sdk import Client


def run_json(cli, *args: str) -> dict:
    result = cli(*args, "-o", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def wait_for(cli, run_id: int, bean: str, state: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = run_json(cli, "run", "show", str(run_id))
        if next(b for b in run["beans"] if b["name"] == bean)["state"] == state:
            return run
        time.sleep(0.05)
    raise AssertionError(f"{bean} of run {run_id} never reached {state}")


def line_of(text: str, word: str) -> str:
    return next(line for line in text.splitlines() if f" {word}  " in line)


def indent(line: str) -> int:
    return len(line) - len(line.lstrip(" │├└─"))


def test_flow_list_and_show_draw_the_dag(writer_cli):
    listed = writer_cli("flow", "list")
    assert listed.exit_code == 0, listed.output
    assert "test.crash" in listed.stdout and "prepare, flash, inventory, report" in listed.stdout
    shown = writer_cli("flow", "show", "test.crash")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0] == "test.crash (family test.crash)"
    for bean in ("prepare", "flash", "inventory", "report"):
        assert f"  {bean}  (" in shown.stdout
    assert "after flash succeeded, inventory succeeded" in shown.stdout
    assert "pools test-switch[rack]" in shown.stdout
    data = yaml.safe_load(writer_cli("flow", "show", "test.crash", "-o", "yaml").stdout)
    assert [b["name"] for b in data["beans"]] == ["prepare", "flash", "inventory", "report"]
    missing = writer_cli("flow", "show", "nope")
    assert missing.exit_code == 5 and "no flow named 'nope'" in missing.stderr


def test_run_start_show_signal_and_finish(writer_cli, worker):
    started = writer_cli(
        *("run", "start", "test.crash", "asset:SN1"),
        *("--param", "rack=r1", "-p", "sleep=0", "-o", "json"),
    )
    assert started.exit_code == 0, started.output
    run = json.loads(started.stdout)
    assert run["params"] == {"rack": "r1", "sleep": 0}  # text stays text, JSON is parsed
    assert f"started run {run['id']}" in started.stderr
    run_id = str(run["id"])
    wait_for(writer_cli, run["id"], "report", "WAITING")

    shown = writer_cli("run", "show", run_id)
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert f"run {run_id}  test.crash on asset:SN1  RUNNING" in text
    assert "by wanda" in text and "params rack=r1, sleep=0" in text
    prepare, flash = line_of(text, "prepare"), line_of(text, "flash")
    inventory, report = line_of(text, "inventory"), line_of(text, "report")
    assert "prepare  DONE  1 attempt" in prepare
    assert "flash  DONE  1 attempt" in flash and "inventory  DONE" in inventory
    assert "report  WAITING  1 attempt  waiting for report:SN1  (also after inventory)" in report
    # Each bean is drawn under the bean it depends on.
    assert indent(prepare) < indent(flash) == indent(inventory) < indent(report)
    assert text.index(flash) < text.index(report) < text.index(inventory)

    signalled = writer_cli("signal", "report:SN1", "--payload", '{"ok": true}')
    assert signalled.exit_code == 0, signalled.output
    assert signalled.stdout.strip() == "woke 1 waiting bean"
    done = wait_for(writer_cli, run["id"], "report", "DONE")
    assert done["state"] == "SUCCEEDED"
    report = next(b for b in done["beans"] if b["name"] == "report")
    assert [a["outcome"] for a in report["history"]] == ["wait", "done"]
    assert report["data"] == {"report": {"ok": True}}
    final = writer_cli("run", "show", run_id).stdout
    assert f"run {run_id}  test.crash on asset:SN1  SUCCEEDED" in final
    assert "report  DONE  2 attempts" in line_of(final, "report")
    again = writer_cli("signal", "report:SN1", "-o", "json")
    assert json.loads(again.stdout) == {"woken": 0}


def test_run_list_cancel_rewalk_and_conflicts(writer_cli):
    first = run_json(writer_cli, "run", "start", "test.crash", "asset:SN1", "-p", "rack=r1")
    run_json(writer_cli, "run", "start", "test.satisfied", "asset:SN2")
    refused = writer_cli("run", "start", "test.crash", "asset:SN1", "-p", "rack=r2")
    assert refused.exit_code == 6
    assert f"already active: run {first['id']} (test.crash on asset:SN1)" in refused.stderr

    listed = writer_cli("run", "list", "--flow", "test.crash")
    assert "asset:SN1" in listed.stdout and "asset:SN2" not in listed.stdout
    assert "0/4 ended" in listed.stdout
    assert [r["subject"] for r in run_json(writer_cli, "run", "list")["items"]] == [
        "asset:SN2",
        "asset:SN1",
    ]
    one = writer_cli("run", "list", "--limit", "1", "-o", "json")
    cursor = json.loads(one.stdout)["next_cursor"]
    assert len(json.loads(one.stdout)["items"]) == 1
    assert f"showing 1; more exist: the next with --cursor {cursor}, all with --all" in one.stderr
    older = run_json(writer_cli, "run", "list", "--cursor", cursor)
    assert [r["subject"] for r in older["items"]] == ["asset:SN1"]
    assert len(run_json(writer_cli, "run", "list", "--all")["items"]) == 2
    assert run_json(writer_cli, "run", "list", "--subject", "asset:SN2")["items"][0]["flow"] == (
        "test.satisfied"
    )

    cancelled = writer_cli("run", "cancel", str(first["id"]))
    assert cancelled.exit_code == 0, cancelled.output
    assert "CANCELLED" in line_of(cancelled.stdout, "report")
    assert "cancelled by wanda" in cancelled.stdout
    assert writer_cli("run", "cancel", str(first["id"])).exit_code == 6
    stopped = run_json(writer_cli, "run", "list", "--state", "cancelled")
    assert [r["id"] for r in stopped["items"]] == [first["id"]]
    resumed = writer_cli("run", "rewalk", str(first["id"]))
    assert resumed.exit_code == 0, resumed.output
    assert f"run {first['id']}  test.crash on asset:SN1  RUNNING" in resumed.stdout
    assert "prepare  READY" in resumed.stdout
    assert writer_cli("run", "show", "999999").exit_code == 5


def test_run_start_refuses_bad_input(writer_cli):
    missing = writer_cli("run", "start", "test.crash", "asset:SN1")
    assert missing.exit_code == 7 and "needs parameter(s) rack" in missing.stderr
    bad_subject = writer_cli("run", "start", "test.crash", "SN1", "-p", "rack=r1")
    assert bad_subject.exit_code == 7
    assert writer_cli("run", "start", "test.crash", "asset:SN1", "-p", "rack").exit_code == 2
    assert writer_cli("signal", "k", "--payload", "[1]").exit_code == 2
    assert writer_cli("signal", "k", "--payload", "{nope").exit_code == 2


def test_json_pairs_parse_json_values_and_keep_the_rest_as_text():
    words = ["rack=r1", "n=5", "on=true", 'tags={"a": 1}', "version=1.10", 'v="1.10"', "empty="]
    assert parsing.json_pairs(words) == {
        **{"rack": "r1", "n": 5, "on": True, "tags": {"a": 1}},
        **{"version": 1.1, "v": "1.10", "empty": ""},  # quote a value to keep it text
    }


def test_pool_set_needs_an_admin_token(writer_cli, tokens, live_server):
    with Client(live_server, tokens.write) as client:
        client.runs.start("test.crash", "asset:SN1", {"rack": "r7"})
    listed = writer_cli("pool", "list", "--prefix", "test-switch:")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[1].split() == ["test-switch:r7", "3", "0"]
    denied = writer_cli("pool", "set", "test-switch:r7", "8")
    assert denied.exit_code == 4, denied.output
    admin = {"METALYARD_TOKEN": tokens.admin}
    resized = writer_cli("pool", "set", "test-switch:r7", "8", "-o", "json", env=admin)
    assert resized.exit_code == 0, resized.output
    assert json.loads(resized.stdout) == {"key": "test-switch:r7", "size": 8, "in_use": 0}
    assert writer_cli("pool", "set", "test-switch:r7", "0", env=admin).exit_code == 2
    pools = run_json(writer_cli, "pool", "list")
    assert pools == {
        "items": [{"key": "test-switch:r7", "size": 8, "in_use": 0}],
        "next_cursor": None,
    }


def test_worker_refuses_a_flow_module_it_cannot_import(cli, database):
    env = {"METALYARD_DATABASE_URL": database.url}
    result = cli("worker", "--flows", "no.such.module", env=env)
    assert result.exit_code == 7
    assert "cannot import flow module 'no.such.module'" in result.stderr
    assert cli("worker", "--concurrency", "0").exit_code == 2
