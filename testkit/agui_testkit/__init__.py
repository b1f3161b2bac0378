"""Test and benchmark helpers that ship with the library: log generators and strategies.

Plain Python with no dependency on the rest of agui_gateway. The hypothesis
strategies live in :mod:`agui_testkit.strategies` (imported on demand,
since hypothesis is a test-only dependency).
"""

from agui_testkit.generate import SHAPES, LogShape, generate_log, iter_log, realistic_coding_agent

__all__ = ["SHAPES", "LogShape", "generate_log", "iter_log", "realistic_coding_agent"]
