"""The ``agui-gateway`` command line: one group, each command in its own module."""

from __future__ import annotations

import click

from agui_gateway import __version__


@click.group()
@click.version_option(__version__, prog_name="agui-gateway")
def main() -> None:
    """Durable, compacting gateway for AG-UI agents."""


def _register() -> None:
    from agui_gateway.commands.compact import compact, inspect
    from agui_gateway.commands.serve import serve

    main.add_command(compact)
    main.add_command(inspect)
    main.add_command(serve)


_register()
