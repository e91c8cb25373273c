from metalyard.cli.main import app

app(prog_name="metalyard")
