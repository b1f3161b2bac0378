"""The thread browser at ``/ui``: static files shipped in the package, and the routes it reads.

The page (``static/``) is an AG-UI client of its own gateway; its official-client
bundle is built from ``ui/`` at the repository root (see ``ui/README.md``).
"""

from agui_gateway.server.ui.routes import ui_routes

__all__ = ["ui_routes"]
