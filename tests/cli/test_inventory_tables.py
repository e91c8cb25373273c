"""Tables: one line a row, columns aligned, however many rows and whatever a cell holds."""

from rich.console import Console

from metalyard.cli import output
from metalyard.inventory.schemas import SiteOut


def test_a_cell_with_a_newline_stays_on_its_row(writer_cli):
    assert writer_cli("site", "create", "dub1", "--description", "cold\naisle").exit_code == 0
    assert writer_cli("site", "create", "ams2", "--description", "x").exit_code == 0
    lines = writer_cli("site", "list", "--sort", "name").stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["NAME", "DESCRIPTION", "ADDRESS"],
        ["ams2", "x", "1"],
        ["dub1", "cold", "aisle"],
    ]
    assert lines[1].index("x") == lines[2].index("cold") == lines[0].index("DESCRIPTION")


def test_a_long_table_on_a_terminal_is_plain_rows(monkeypatch, capsys):
    monkeypatch.setattr(output, "RICH_ROWS", 2)
    monkeypatch.setattr(output, "Console", lambda **kw: Console(force_terminal=True, **kw))
    times = {"created_at": 0, "updated_at": 0}
    sites = [
        SiteOut(name=f"site{n}", description="", address="", version=1, **times) for n in range(3)
    ]
    output.listing(sites, output.Output.table, ["name", "version"])
    lines = capsys.readouterr().out.splitlines()
    assert "NAME   VERSION" in lines[0] and "─" * len("NAME   VERSION") in lines[1]
    assert lines[2:] == ["site0  1", "site1  1", "site2  1"]
