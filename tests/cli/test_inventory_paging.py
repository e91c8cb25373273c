"""List commands show one page (asset list) or all unless told otherwise, say when more
exist, and go on from the cursor they gave."""

import json

import pytest
import yaml

from metalyard.cli.common import DEFAULT_LIMIT


@pytest.fixture
def fleet(writer_cli, tmp_path):
    """Two assets more than a default page."""
    count = DEFAULT_LIMIT + 2
    csv_file = tmp_path / "fleet.csv"
    csv_file.write_text("serial\n" + "".join(f"SN{n:04d}\n" for n in range(count)))
    assert writer_cli("asset", "import", str(csv_file)).exit_code == 0
    return count


def page(result) -> tuple[list[str], str | None]:
    """The serials a `-o json` asset list printed, and its next cursor."""
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    return [asset["serial"] for asset in printed["items"]], printed["next_cursor"]


def more(shown: int, cursor: str, every: str = "--all") -> str:
    return f"showing {shown}; more exist: the next with --cursor {cursor}, all with {every}\n"


def test_asset_list_shows_a_page_and_the_cursor_to_go_on(writer_cli, fleet):
    result = writer_cli("asset", "list", "-o", "json")
    serials, cursor = page(result)
    assert serials == [f"SN{n:04d}" for n in range(DEFAULT_LIMIT)]
    assert cursor and result.stderr == more(DEFAULT_LIMIT, cursor)
    table = writer_cli("asset", "list")
    assert len(table.stdout.splitlines()) == 1 + DEFAULT_LIMIT
    assert table.stderr == more(DEFAULT_LIMIT, cursor)
    rest = writer_cli("asset", "list", "--cursor", cursor, "-o", "json")
    assert page(rest) == (["SN0100", "SN0101"], None) and rest.stderr == ""


def test_pages_of_a_limit_walk_the_list_without_a_gap_or_a_repeat(writer_cli, fleet):
    walked, cursor, requests = [], None, 0
    while True:
        more_options = ["--cursor", cursor] if cursor else []
        serials, cursor = page(
            writer_cli("asset", "list", "--limit", "7", *more_options, "-o", "json")
        )
        walked += serials
        requests += 1
        if cursor is None:
            break
    assert walked == [f"SN{n:04d}" for n in range(fleet)]
    assert requests == -(-fleet // 7)


def test_yaml_prints_the_same_page(writer_cli, fleet):
    result = writer_cli("asset", "list", "--limit", "2", "--sort", "-serial", "-o", "yaml")
    printed = yaml.safe_load(result.stdout)
    assert [asset["serial"] for asset in printed["items"]] == ["SN0101", "SN0100"]
    assert result.stderr == more(2, printed["next_cursor"])
    after = writer_cli(
        "asset", "list", "--limit", "1", "--sort", "-serial", "--cursor", printed["next_cursor"]
    )
    assert after.stdout.splitlines()[1].split()[0] == "SN0099"


def test_a_cursor_taken_to_another_sort_is_refused(writer_cli, fleet):
    _, cursor = page(writer_cli("asset", "list", "--limit", "1", "-o", "json"))
    result = writer_cli("asset", "list", "--sort", "-serial", "--cursor", cursor)
    assert result.exit_code == 7
    assert "this cursor continues the list sorted by 'id', not '-serial'" in result.stderr


def test_asset_list_all_or_a_limit_reaches_past_the_first_page(writer_cli, fleet):
    everything = writer_cli("asset", "list", "--all", "-o", "json")
    assert len(page(everything)[0]) == fleet and everything.stderr == ""
    assert page(everything)[1] is None
    assert len(page(writer_cli("asset", "list", "--limit", "0", "-o", "json"))[0]) == fleet
    exact = writer_cli("asset", "list", "--limit", str(fleet), "-o", "json")
    assert page(exact) == ([f"SN{n:04d}" for n in range(fleet)], None) and exact.stderr == ""
    fewer = writer_cli("asset", "list", "--limit", "3", "-o", "json")
    serials, cursor = page(fewer)
    assert serials == ["SN0000", "SN0001", "SN0002"]
    assert fewer.stderr == more(3, cursor)


def test_asset_list_refuses_all_with_a_limit(writer_cli):
    result = writer_cli("asset", "list", "--all", "--limit", "5")
    assert result.exit_code == 2
    assert "give --all or --limit, not both" in result.output


def test_a_list_that_shows_all_by_default_goes_on_from_its_cursor_too(writer_cli):
    for name in ("a1", "a2", "a3"):
        assert writer_cli("site", "create", name).exit_code == 0
    first = writer_cli("site", "list", "--limit", "2", "-o", "json")
    printed = json.loads(first.stdout)
    assert [site["name"] for site in printed["items"]] == ["a1", "a2"]
    assert first.stderr == more(2, printed["next_cursor"], every="--limit 0")
    rest = writer_cli("site", "list", "--cursor", printed["next_cursor"], "-o", "json")
    assert json.loads(rest.stdout) == {
        "items": [json.loads(writer_cli("site", "show", "a3", "-o", "json").stdout)],
        "next_cursor": None,
    }
    assert rest.stderr == ""
