from ictal.cli.main import app

app(prog_name="ictal")
