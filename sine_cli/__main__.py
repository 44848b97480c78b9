"""`python -m sine_cli ...` is the `sine` command."""

from sine_cli.app import app

app(prog_name="sine")
