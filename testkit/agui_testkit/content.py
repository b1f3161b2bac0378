"""Realistic payloads of a coding-agent session: tool calls, tool results, inputs.

Pure functions of a ``random.Random``; the planner decides when each is used.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from agui_testkit import text

TOOLS: list[dict[str, Any]] = [
    {
        "name": "read_file",
        "description": "Read a file from the workspace.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
    {
        "name": "write_file",
        "description": "Create or overwrite a file.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
    {
        "name": "edit_file",
        "description": "Replace one exact string in a file.",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "old_string": {"type": "string"},
                "new_string": {"type": "string"},
            },
            "required": ["path"],
        },
    },
    {
        "name": "bash",
        "description": "Run a shell command in the workspace.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}, "timeout": {"type": "integer"}},
            "required": ["command"],
        },
    },
    {
        "name": "grep",
        "description": "Search file contents with a regular expression.",
        "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}}},
    },
    {
        "name": "task",
        "description": "Delegate a self-contained task to a subagent.",
        "parameters": {
            "type": "object",
            "properties": {"description": {"type": "string"}, "prompt": {"type": "string"}},
        },
    },
]

_COMMANDS = (
    "pytest -x -q tests/",
    "git status --short",
    "git diff --stat HEAD~1",
    "ls -la src/",
    "npm run build 2>&1 | tail -n 40",
    'python -c "import sys; print(sys.version)"',
    "rg -n 'TODO|FIXME' --glob '*.py'",
    "cat pyproject.toml",
)
_WEIGHTS = {"read_file": 30, "write_file": 10, "edit_file": 15, "bash": 25, "grep": 15}


@dataclass
class ToolCallSpec:
    name: str
    arguments: str  # the complete JSON the ARGS deltas spell out


def _path(rng: random.Random) -> str:
    return f"src/{rng.choice(text.WORDS)}/{rng.choice(text.WORDS)}_{rng.randrange(100)}.py"


def tool_call(rng: random.Random, args_chars: int, allow_task: bool, unicode_ratio: float) -> ToolCallSpec:
    if allow_task:
        name = "task"
        args = {"description": text.words(rng, 4), "prompt": text.prose(rng, args_chars, unicode_ratio)}
    else:
        name = rng.choices(list(_WEIGHTS), list(_WEIGHTS.values()))[0]
        if name == "read_file":
            args = {"path": _path(rng)}
        elif name == "write_file":
            args = {"path": _path(rng), "content": text.code_block(rng, args_chars)}
        elif name == "edit_file":
            half = max(1, args_chars // 2)
            args = {
                "path": _path(rng),
                "old_string": text.code_block(rng, half),
                "new_string": text.code_block(rng, half),
            }
        elif name == "bash":
            args = {"command": rng.choice(_COMMANDS), "timeout": 120}
        else:
            args = {"pattern": rng.choice(("def \\w+\\(", "class [A-Z]", "import (json|os)", "TODO")), "path": "src/"}
    # ensure_ascii=False: non-ASCII survives as itself, as most producers send it.
    return ToolCallSpec(name, json.dumps(args, ensure_ascii=False))


def tool_result(rng: random.Random, call: ToolCallSpec, size: int, content_parts: float) -> Any:
    if call.name in ("read_file", "task"):
        body = text.code_block(rng, size) if call.name == "read_file" else text.prose(rng, size)
    elif call.name in ("bash", "grep"):
        body = text.command_output(rng, size)
    else:
        diff = "".join(rng.choice("+- ") + line + "\n" for line in text.code_block(rng, size).splitlines())
        body = f"OK: {call.name} applied\n@@ -1,{rng.randrange(1, 40)} +1,{rng.randrange(1, 40)} @@\n{diff}"
    body = body[:size]
    if rng.random() < content_parts:
        parts: list[dict[str, Any]] = [{"type": "text", "text": body}]
        if rng.random() < 0.3:
            parts.append(
                {
                    "type": "image",
                    "source": {
                        "type": "url",
                        "value": f"https://example.com/shot-{rng.randrange(999)}.png",
                        "mimeType": "image/png",
                    },
                }
            )
        return parts
    return body


def user_message(rng: random.Random, message_id: str, content_parts: float, unicode_ratio: float) -> dict[str, Any]:
    body = text.prose(rng, rng.randrange(20, 300), unicode_ratio)
    if rng.random() < content_parts:
        content: Any = [
            {"type": "text", "text": body},
            {"type": "document", "source": {"type": "data", "value": "aGVsbG8gd29ybGQK", "mimeType": "text/plain"}},
        ]
    else:
        content = body
    return {"id": message_id, "role": "user", "content": content}


def activity_content(rng: random.Random) -> dict[str, Any]:
    return {
        "title": text.words(rng, 3),
        "steps": [{"label": text.words(rng, 3), "status": "pending"} for _ in range(rng.randrange(1, 5))],
        "progress": 0,
    }


def custom_event(rng: random.Random) -> tuple[str, Any]:
    return rng.choice(
        (
            ("PredictState", [{"state_key": "todos", "tool": "write_todos", "tool_argument": "todos"}]),
            ("ui.toast", {"level": "info", "text": text.words(rng, 5)}),
            ("usage", {"inputTokens": rng.randrange(10_000), "outputTokens": rng.randrange(2_000)}),
            ("heartbeat", rng.randrange(10**6)),
        )
    )


def raw_event(rng: random.Random) -> tuple[Any, str]:
    return (
        {
            "type": "content_block_delta",
            "index": rng.randrange(4),
            "delta": {"type": "text_delta", "text": text.words(rng, 2)},
        },
        "anthropic",
    )


def metadata(rng: random.Random) -> dict[str, Any]:
    return rng.choice(
        (
            {"model": "claude-sonnet-4", "latencyMs": rng.randrange(2000)},
            {"traceId": f"{rng.getrandbits(64):016x}", "spanId": f"{rng.getrandbits(32):08x}"},
            {"usage": {"outputTokens": rng.randrange(500)}, "note": None},
            {"ag-ui-gen": {"seq": rng.randrange(10**6)}},
        )
    )


def usage(rng: random.Random) -> list[dict[str, Any]]:
    prompt, output = rng.randrange(1000, 200_000), rng.randrange(10, 8000)
    return [
        {
            "provider": "anthropic",
            "model": "claude-sonnet-4",
            "inputTokens": prompt,
            "outputTokens": output,
            "totalTokens": prompt + output,
            "cachedInputTokens": prompt // 2,
        }
    ]


def encrypted_blob(rng: random.Random) -> str:
    return "enc_" + "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        for _ in range(rng.randrange(24, 96))
    )
