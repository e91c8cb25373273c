"""Inventory commands against a live server: output formats, import, errors as exit codes."""

import json

import pytest
import yaml

from tests.cli.conftest import items


@pytest.fixture
def rack(writer_cli):
    assert writer_cli("site", "create", "dub1", "--address", "Dublin").exit_code == 0
    result = writer_cli("rack", "create", "r01", "--site", "dub1", "--mgmt-switch", "sw1")
    assert result.exit_code == 0, result.output


def enrol(cli, serial, *options):
    result = cli("asset", "create", serial, *options, "-o", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_asset_create_and_show_print_the_api_shape(writer_cli, rack):
    created = enrol(
        writer_cli,
        "SN1",
        "--hostname",
        "node1.dub1",
        "--site",
        "dub1",
        "--rack",
        "r01",
        "--position",
        "12",
        "--interface",
        "eno1=52-54-00-AA-00-01",
        "--tag",
        "pool=batch",
        "--state",
        "spare",
    )
    assert created["interfaces"] == [
        {"name": "eno1", "mac": "52:54:00:aa:00:01", "speed_mbps": None}
    ]
    assert (created["rack"], created["rack_position_u"], created["state"]) == ("r01", 12, "SPARE")
    shown = writer_cli("asset", "show", "SN1", "-o", "yaml")
    assert yaml.safe_load(shown.stdout) == created
    table = writer_cli("asset", "show", "SN1")
    assert "node1.dub1" in table.stdout and "pool=batch" in table.stdout


def test_asset_list_filters_and_limits(writer_cli):
    for n in range(5):
        enrol(
            writer_cli, f"SN{n}", "--state", "SPARE" if n % 2 else "DISCOVERED", "--tag", f"n={n}"
        )
    spare = writer_cli("asset", "list", "--state", "SPARE", "-o", "json")
    assert [a["serial"] for a in items(spare)] == ["SN1", "SN3"]
    tagged = writer_cli(
        "asset", "list", "--tag", "n=3", "--state", "spare", "--state", "discovered"
    )
    assert "SN3" in tagged.stdout and "SN1" not in tagged.stdout
    limited = writer_cli("asset", "list", "--sort", "-serial", "--limit", "2", "-o", "json")
    assert [a["serial"] for a in items(limited)] == ["SN4", "SN3"]
    found = writer_cli("asset", "list", "-q", "sn2", "-o", "json")
    assert [a["serial"] for a in items(found)] == ["SN2"]
    assert items(writer_cli("asset", "list", "--search", "zz", "-o", "json")) == []


def test_asset_update_tag_and_history(writer_cli, rack):
    enrol(writer_cli, "SN1", "--tag", "pool=batch", "--tag", "old=x")
    updated = writer_cli(
        "asset", "update", "SN1", "--hostname", "n1", "--version", "1", "-o", "json"
    )
    assert json.loads(updated.stdout)["hostname"] == "n1"
    tagged = writer_cli(
        "asset", "tag", "SN1", "pool=web", "team=a", "--remove", "old", "-o", "json"
    )
    assert json.loads(tagged.stdout)["tags"] == {"pool": "web", "team": "a"}
    moved = writer_cli(
        "asset", "transition", "SN1", "EVALUATING", "--reason", "burn-in", "-o", "json"
    )
    assert json.loads(moved.stdout)["state"] == "EVALUATING"
    history = items(writer_cli("asset", "history", "SN1", "-o", "json"))
    assert [(h["from_state"], h["to_state"], h["reason"]) for h in history] == [
        (None, "DISCOVERED", "enrolled"),
        ("DISCOVERED", "EVALUATING", "burn-in"),
    ]


def test_unset_clears_an_assets_machine_class(writer_cli):
    assert writer_cli("machine-class", "create", "compute-large").exit_code == 0
    enrol(writer_cli, "SN1", "--machine-class", "compute-large")
    cleared = writer_cli("asset", "update", "SN1", "--unset", "machine-class", "-o", "json")
    assert json.loads(cleared.stdout)["machine_class"] is None


def test_sites_racks_and_machine_classes_round_trip(writer_cli, rack):
    sites = items(writer_cli("site", "list", "-o", "json"))
    assert [(s["name"], s["address"]) for s in sites] == [("dub1", "Dublin")]
    shown = json.loads(writer_cli("rack", "show", "dub1/r01", "-o", "json").stdout)
    assert shown["mgmt_switch"] == "sw1"
    updated = writer_cli("rack", "update", str(shown["id"]), "--bmc-capacity", "8", "-o", "json")
    assert json.loads(updated.stdout)["bmc_capacity"] == 8
    assert writer_cli("rack", "delete", "dub1/r01").exit_code == 0
    assert writer_cli("site", "delete", "dub1").exit_code == 0
    assert items(writer_cli("site", "list", "-o", "json")) == []
    writer_cli("machine-class", "create", "gpu", "--description", "8 GPUs")
    classes = writer_cli("machine-class", "list")
    assert "8 GPUs" in classes.stdout


def test_transition_waiting_for_approval_is_approved_by_someone_else(
    writer_cli, cli, live_server, tokens
):
    enrol(writer_cli, "SN1", "--state", "BAREMETAL")
    parked = writer_cli("asset", "transition", "SN1", "RELEASING", "--reason", "done", "-o", "json")
    assert parked.exit_code == 0
    change = json.loads(parked.stdout)
    assert f"metalyard change approve {change['id']}" in parked.stderr
    pending = items(writer_cli("change", "list", "--state", "PENDING", "-o", "json"))
    assert [c["id"] for c in pending] == [change["id"]]
    cli(
        "region",
        "add",
        "checker",
        "--serves",
        "test-1",
        "--url",
        live_server,
        "--token",
        tokens.other_write,
    )
    mine = writer_cli("change", "approve", str(change["id"]))
    assert mine.exit_code == 4
    approved = cli("--region", "checker", "change", "approve", str(change["id"]), "--comment", "ok")
    assert approved.exit_code == 0, approved.output
    assert "APPROVED" in approved.stderr
    shown = json.loads(writer_cli("asset", "show", "SN1", "-o", "json").stdout)
    assert shown["state"] == "RELEASING"


def test_approving_a_move_that_no_longer_applies_exits_with_its_conflict(
    writer_cli, cli, live_server, tokens
):
    enrol(writer_cli, "SN1", "--state", "BAREMETAL")
    first = json.loads(
        writer_cli("asset", "transition", "SN1", "RELEASING", "--reason", "a", "-o", "json").stdout
    )
    second = json.loads(
        writer_cli(
            "asset", "transition", "SN1", "QUARANTINED", "--reason", "b", "-o", "json"
        ).stdout
    )
    cli(
        "region",
        "add",
        "checker",
        "--serves",
        "test-1",
        "--url",
        live_server,
        "--token",
        tokens.other_write,
    )
    assert cli("--region", "checker", "change", "approve", str(first["id"])).exit_code == 0
    failed = cli("--region", "checker", "change", "approve", str(second["id"]))
    assert failed.exit_code == 6
    assert "was approved but failed: asset 'SN1' moved to RELEASING" in failed.stderr


def test_delete_waits_for_approval_and_reject_keeps_the_asset(writer_cli, cli, live_server, tokens):
    enrol(writer_cli, "SN1")
    parked = writer_cli("asset", "delete", "SN1", "--reason", "scrapped", "-o", "json")
    change_id = str(json.loads(parked.stdout)["id"])
    cli(
        "region",
        "add",
        "checker",
        "--serves",
        "test-1",
        "--url",
        live_server,
        "--token",
        tokens.other_write,
    )
    rejected = cli("--region", "checker", "change", "reject", change_id, "--comment", "no")
    assert rejected.exit_code == 0 and "REJECTED" in rejected.stderr
    shown = json.loads(writer_cli("change", "show", change_id, "-o", "json").stdout)
    assert (shown["state"], shown["decision_comment"]) == ("REJECTED", "no")
    assert writer_cli("asset", "show", "SN1").exit_code == 0


# Import --------------------------------------------------------------------------------


def test_asset_import_from_csv_with_interfaces_and_tags(writer_cli, rack, tmp_path):
    csv_file = tmp_path / "assets.csv"
    csv_file.write_text(
        "serial,hostname,site,rack,rack_position_u,interfaces,tags,maintenance\n"
        "SN1,node1,dub1,r01,1,eno1=52:54:00:00:00:01;eno2=52:54:00:00:00:02,pool=batch;gen=7,\n"
        "00042,node2,dub1,r01,3,,,true\n"
    )
    result = writer_cli("asset", "import", str(csv_file))
    assert result.exit_code == 0, result.output
    assert "imported 2 asset(s)" in result.stderr
    first = json.loads(writer_cli("asset", "show", "SN1", "-o", "json").stdout)
    assert [i["name"] for i in first["interfaces"]] == ["eno1", "eno2"]
    assert first["tags"] == {"pool": "batch", "gen": "7"}
    second = json.loads(writer_cli("asset", "show", "00042", "-o", "json").stdout)
    assert (second["rack_position_u"], second["maintenance"]) == (3, True)


def test_asset_import_from_yaml_keeps_serials_as_written(writer_cli, tmp_path):
    yaml_file = tmp_path / "assets.yaml"
    yaml_file.write_text(
        "- serial: 00123\n  firmware: {bios: 1.10}\n  interfaces: eno1=52:54:00:11:22:33\n"
        "- serial: SN2\n  tags: {pool: web}\n"
    )
    result = writer_cli("asset", "import", str(yaml_file), "-o", "json")
    assert json.loads(result.stdout) == {"created": 2, "serials": ["00123", "SN2"]}
    shown = json.loads(writer_cli("asset", "show", "00123", "-o", "json").stdout)
    assert shown["firmware"] == {"bios": "1.10"}
    assert shown["interfaces"][0]["mac"] == "52:54:00:11:22:33"


def test_asset_import_names_each_refused_row_and_imports_nothing(writer_cli, rack, tmp_path):
    enrol(writer_cli, "TAKEN")
    csv_file = tmp_path / "assets.csv"
    csv_file.write_text("serial,site,rack\nOK1,dub1,r01\nTAKEN,dub1,r01\nOK2,dub1,r99\n")
    result = writer_cli("asset", "import", str(csv_file))
    assert result.exit_code == 7
    lines = result.stderr.splitlines()
    assert lines[0] == "error: 2 of 3 row(s) are invalid; nothing was imported"
    assert "  line 3 (TAKEN): serial: an asset with serial 'TAKEN' already exists" in lines
    assert "  line 4 (OK2): rack: no rack 'r99' in site 'dub1'" in lines
    assert "Traceback" not in result.output
    listed = items(writer_cli("asset", "list", "-o", "json"))
    assert [a["serial"] for a in listed] == ["TAKEN"]


def test_asset_import_names_rows_that_fail_validation(writer_cli, tmp_path):
    json_file = tmp_path / "assets.json"
    json_file.write_text(json.dumps([{"serial": "OK"}, {"serial": "bad serial"}]))
    result = writer_cli("asset", "import", str(json_file))
    assert result.exit_code == 7
    assert "  item 2 (bad serial): serial: String should match pattern" in result.stderr


def test_asset_import_reports_malformed_cells_before_sending(writer_cli, tmp_path):
    csv_file = tmp_path / "assets.csv"
    csv_file.write_text("serial,interfaces\nSN1,eno1\n")
    result = writer_cli("asset", "import", str(csv_file))
    assert result.exit_code == 7
    assert (
        "line 2 (SN1): interface 'eno1' must look like NAME=MAC (e.g. eno1=52:54:00:aa:00:01)"
        in result.stderr
    )


def test_asset_import_refuses_names_a_cell_repeats_naming_the_line(writer_cli, tmp_path):
    csv_file = tmp_path / "assets.csv"
    csv_file.write_text(
        "serial,interfaces,tags\n"
        "SN1,eno1=52:54:00:aa:00:91;eno1=52:54:00:aa:00:92,\n"
        "SN2,eno1=52:54:00:aa:00:93,pool=a;pool=b\n"
    )
    result = writer_cli("asset", "import", str(csv_file))
    assert result.exit_code == 7
    assert result.stderr.splitlines()[1:] == [
        "  line 2 (SN1): interface 'eno1' is given more than once",
        "  line 3 (SN2): tag 'pool' is given more than once",
    ]
    assert items(writer_cli("asset", "list", "-o", "json")) == []


def test_asset_import_refuses_a_column_given_twice(writer_cli, tmp_path):
    csv_file = tmp_path / "assets.csv"
    csv_file.write_text("serial,tags,Tags\nSN1,pool=a,pool=b\n")
    result = writer_cli("asset", "import", str(csv_file))
    assert result.exit_code == 7
    assert "  line 1: tags: the column is given more than once" in result.stderr


def test_asset_import_refuses_keys_a_json_or_yaml_item_repeats(writer_cli, tmp_path):
    json_file = tmp_path / "assets.json"
    json_file.write_text('[{"serial": "SN1", "tags": {"pool": "a", "pool": "b"}}]')
    result = writer_cli("asset", "import", str(json_file))
    assert result.exit_code == 7
    assert "  item 1 (SN1): tags: 'pool' is given more than once" in result.stderr
    yaml_file = tmp_path / "assets.yaml"
    yaml_file.write_text("- serial: SN1\n  firmware:\n    bios: '1.0'\n    bios: '1.1'\n")
    result = writer_cli("asset", "import", str(yaml_file))
    assert result.exit_code == 7
    assert "  item 1 (SN1): firmware: 'bios' is given more than once (lines 3, 4)" in result.stderr
    assert items(writer_cli("asset", "list", "-o", "json")) == []


def test_asset_import_names_the_earlier_row_by_its_line_too(writer_cli, tmp_path):
    csv_file = tmp_path / "assets.csv"
    csv_file.write_text(
        "serial,interfaces\n\nSN1,eno1=52:54:00:aa:00:01\nSN1,eno1=52:54:00:aa:00:01\n"
    )
    result = writer_cli("asset", "import", str(csv_file))
    assert result.exit_code == 7
    assert result.stderr.splitlines()[1:] == [
        "  line 4 (SN1): serial: serial repeats line 3",
        "  line 4 (SN1): interfaces: MAC 52:54:00:aa:00:01 repeats line 3",
    ]


# Exit codes ----------------------------------------------------------------------------


def test_not_found_exits_5_with_the_server_message(writer_cli):
    result = writer_cli("asset", "show", "NOPE")
    assert result.exit_code == 5
    assert result.stderr == "error: no asset with serial 'NOPE'\n"
    assert result.stdout == ""


def test_forbidden_transition_exits_6_naming_both_states_and_the_allowed_ones(writer_cli):
    enrol(writer_cli, "SN1", "--state", "SPARE")
    result = writer_cli("asset", "transition", "SN1", "BAREMETAL", "--reason", "skip")
    assert result.exit_code == 6
    assert result.stderr == (
        "error: asset 'SN1' cannot move from SPARE to BAREMETAL; "
        "allowed from SPARE: DECOMMISSIONED, EVALUATING, PROVISIONING, QUARANTINED\n"
    )


def test_stale_version_exits_6(writer_cli):
    enrol(writer_cli, "SN1")
    result = writer_cli("asset", "update", "SN1", "--hostname", "x", "--version", "9")
    assert result.exit_code == 6
    assert "has never been at version 9 (now version 1)" in result.stderr
    writer_cli("asset", "update", "SN1", "--hostname", "y", "--version", "1")
    result = writer_cli("asset", "update", "SN1", "--hostname", "x", "--version", "1")
    assert result.exit_code == 6
    assert "changed since version 1 (now version 2)" in result.stderr


def test_invalid_input_exits_7(writer_cli):
    result = writer_cli("asset", "create", "SN1", "--interface", "eno1=not-a-mac")
    assert result.exit_code == 7
    assert result.stderr.startswith("error: interfaces.0.mac: String should match pattern")


def test_malformed_argument_is_a_usage_error(writer_cli):
    assert writer_cli("asset", "create", "SN1", "--tag", "novalue").exit_code == 2
    assert writer_cli("asset", "list", "--state", "FLYING").exit_code == 2
    malformed = writer_cli("asset", "create", "SN1", "--interface", "eno1")
    assert malformed.exit_code == 2
    assert "must look like NAME=MAC" in malformed.output


@pytest.mark.parametrize(
    "options",
    [
        ("--interface", "eno1=52:54:00:aa:00:99", "--interface", "eno1=52:54:00:aa:00:98"),
        ("--tag", "pool=a", "--tag", "pool=b"),
    ],
)
def test_a_name_given_twice_is_refused_not_folded(writer_cli, options):
    result = writer_cli("asset", "create", "SN9", *options)
    assert result.exit_code == 2
    assert "is given more than once" in result.output
    assert writer_cli("asset", "show", "SN9").exit_code == 5


def test_read_only_token_writing_exits_4(cli, live_server, tokens):
    cli("region", "add", "ro", "--serves", "test-1", "--url", live_server, "--token", tokens.read)
    result = cli("site", "create", "dub1")
    assert result.exit_code == 4
    assert "needs a token with scope write" in result.stderr
    assert "an admin must grant the role (metalyard user update rita --role write)" in (
        result.stderr
    )


def test_wrong_token_exits_4(cli, live_server):
    cli("region", "add", "bad", "--no-check", "--url", live_server, "--token", "my_nope")
    result = cli("asset", "list")
    assert result.exit_code == 4
    assert result.stderr == "error: the token is not valid\n"


def test_unreachable_server_exits_3(cli):
    from tests.peers.postgres import free_port

    url = f"http://127.0.0.1:{free_port()}"
    cli("region", "add", "gone", "--no-check", "--url", url, "--token", "my_x")
    result = cli("asset", "list")
    assert result.exit_code == 3
    assert result.stderr.startswith(f"error: cannot reach {url}")
    assert len(result.stderr.splitlines()) == 1
