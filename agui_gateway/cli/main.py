"""The ``agui-gateway`` command line: one group, each command in its own module.

Commands are imported only when invoked: ``serve`` pulls in the web stack and
the protocol's pydantic models, which a quick ``compact`` or ``inspect`` of a
file should not pay for.
"""

from __future__ import annotations

import importlib

import click

from agui_gateway import __version__

# command name -> "module:attribute"
_COMMANDS = {
    "compact": "agui_gateway.cli.compact:compact",
    "inspect": "agui_gateway.cli.compact:inspect",
    "recover": "agui_gateway.cli.recover:recover",
    "serve": "agui_gateway.cli.serve:serve",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="agui-gateway")
def main() -> None:
    """Durable, compacting gateway for AG-UI agents."""


if __name__ == "__main__":
    main()
