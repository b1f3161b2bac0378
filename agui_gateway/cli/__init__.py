"""The ``agui-gateway`` command line (``serve``, ``compact``, ``inspect``)."""

from agui_gateway.cli.main import main

__all__ = ["main"]
