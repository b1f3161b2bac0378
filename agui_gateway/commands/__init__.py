"""Command implementations for the CLI."""
