"""The `metalyard` command: a thin Typer app over the SDK, plus `serve` and `db`."""
