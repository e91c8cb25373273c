"""`asset list` shows one page unless told otherwise, and says when more exist."""

import json

import pytest

from metalyard.cli.common import DEFAULT_LIMIT

MORE = f"showing {DEFAULT_LIMIT}; more exist: --all or --limit N\n"


@pytest.fixture
def fleet(writer_cli, tmp_path):
    """Two assets more than a default page."""
    count = DEFAULT_LIMIT + 2
    csv_file = tmp_path / "fleet.csv"
    csv_file.write_text("serial\n" + "".join(f"SN{n:04d}\n" for n in range(count)))
    assert writer_cli("asset", "import", str(csv_file)).exit_code == 0
    return count


def serials(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [asset["serial"] for asset in json.loads(result.stdout)]


def test_asset_list_shows_a_page_and_says_more_exist(writer_cli, fleet):
    result = writer_cli("asset", "list", "-o", "json")
    assert serials(result) == [f"SN{n:04d}" for n in range(DEFAULT_LIMIT)]
    assert result.stderr == MORE
    table = writer_cli("asset", "list")
    assert len(table.stdout.splitlines()) == 1 + DEFAULT_LIMIT
    assert table.stderr == MORE


def test_asset_list_all_or_a_limit_reaches_past_the_first_page(writer_cli, fleet):
    everything = writer_cli("asset", "list", "--all", "-o", "json")
    assert len(serials(everything)) == fleet and everything.stderr == ""
    assert len(serials(writer_cli("asset", "list", "--limit", "0", "-o", "json"))) == fleet
    exact = writer_cli("asset", "list", "--limit", str(fleet), "-o", "json")
    assert len(serials(exact)) == fleet and exact.stderr == ""
    fewer = writer_cli("asset", "list", "--limit", "3", "-o", "json")
    assert serials(fewer) == ["SN0000", "SN0001", "SN0002"]
    assert fewer.stderr == "showing 3; more exist: --all or --limit N\n"


def test_asset_list_refuses_all_with_a_limit(writer_cli):
    result = writer_cli("asset", "list", "--all", "--limit", "5")
    assert result.exit_code == 2
    assert "give --all or --limit, not both" in result.output
