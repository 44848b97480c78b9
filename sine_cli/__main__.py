"""`python -m sine_cli ...` is the `sine` command."""

from sine_cli.app import main

main()
