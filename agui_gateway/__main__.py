"""``python -m agui_gateway``: the command line."""

from agui_gateway.cli.main import main

main()
