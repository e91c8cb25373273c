"""`python -m metalyard` is the `metalyard` command."""

from metalyard.cli.main import app

app(prog_name="metalyard")
