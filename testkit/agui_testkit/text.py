"""Deterministic text material for generated logs: prose, code, awkward unicode.

Everything here is a pure function of a ``random.Random``, so a seed always
yields the same characters. The corpora are small on purpose: variety comes
from recombination, and a generator that must produce 30 MB cannot afford to
draw every character from the RNG.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

PROSE = (
    "Let me look at the failing test first.",
    "I'll start by reading the module that defines the reducer.",
    "The error comes from an off-by-one in the pagination logic.",
    "Running the test suite again to confirm the fix.",
    "Here's what I changed and why:",
    "All 128 tests pass now, including the new regression test.",
    "The function mutates its argument, which explains the flaky behaviour.",
    "I'd suggest splitting this into two smaller functions.",
    'Note: the config file uses "strict" mode, so unknown keys are rejected.',
    "Next, I'll update the documentation to match the new API.",
    "This looks like a race between the writer and the compactor.",
    "Let me check how `parse_args()` handles the `--verbose` flag.",
    "The path C:\\Users\\dev\\project\\src is Windows-style; we normalise it.",
    "It's safe to retry here because the operation is idempotent.",
    "I couldn't find any callers of `legacy_load`, so it can go.",
    "Summary of the session so far:",
    "- fixed the import cycle\n- added type hints\n- removed dead code",
    "Should I also bump the version in pyproject.toml?",
)

CODE = (
    "def add(a: int, b: int) -> int:\n    return a + b\n",
    "for (let i = 0; i < items.length; i++) {\n  total += items[i].price;\n}\n",
    'import json\n\nwith open("data.json") as fh:\n    data = json.load(fh)\n',
    "SELECT id, name FROM users WHERE email LIKE '%@example.com';\n",
    'const re = /^\\s*(\\w+)\\s*=\\s*"([^"]*)"$/;\n',
    'if err != nil {\n\treturn fmt.Errorf("open %s: %w", path, err)\n}\n',
    "echo \"done\" && printf '%s\\n' \"$HOME\" | tr -d '\\r'\n",
    "class Cache:\n    def __init__(self):\n        self._data: dict[str, bytes] = {}\n",
    '    assert result == {"ok": True, "items": []}\n',
    '#include <stdio.h>\nint main(void) { puts("hi\\tthere"); return 0; }\n',
    'fn main() {\n    let v: Vec<u8> = b"bytes\\x00".to_vec();\n}\n',
    '<div class="card">{{ user.name | escape }}</div>\n',
)

UNICODE = (
    "✅ done",
    "🚀🔥",
    "👩‍💻 pair-programming",
    "👍🏽",
    "🇯🇵",
    "日本語のテキスト",
    "中文测试：数据库连接失败。",
    "한국어 문장",
    "e\u0301te\u0301",  # combining acute accents
    "Z\u0351\u0353a\u0352l\u0354g\u0355o",  # stacked combining marks
    "שלום עולם",
    "مرحبا بالعالم",
    "naïve café",
    "Ω≈ç√∫",
    "«quotes» „and“ ‘more’",
    "tab\there",
    "zero\u200bwidth",
    "line\u2028separator",
    "emoji ZWJ family 👨‍👩‍👧‍👦",
    "math 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
)

WORDS = (
    "the",
    "state",
    "reducer",
    "event",
    "message",
    "tool",
    "call",
    "result",
    "thread",
    "run",
    "snapshot",
    "delta",
    "compact",
    "replay",
    "client",
    "server",
    "queue",
    "stream",
    "buffer",
    "json",
    "patch",
    "index",
    "cache",
    "file",
    "test",
    "fix",
    "error",
    "retry",
    "value",
    "async",
    "await",
)

# Mostly token-sized pieces, occasionally longer ones, never above 20.
_DELTA_SIZES = (1, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 6, 7, 8, 10, 12, 16, 20)


def sentence(rng: random.Random, unicode_ratio: float = 0.0) -> str:
    """One line of prose, code or unicode, in the given mix."""
    roll = rng.random()
    if roll < unicode_ratio:
        return rng.choice(UNICODE)
    if roll < unicode_ratio + (1 - unicode_ratio) * 0.25:
        return rng.choice(CODE)
    return rng.choice(PROSE)


def prose(rng: random.Random, length: int, unicode_ratio: float = 0.0) -> str:
    """About ``length`` characters of assistant-like text (at least one piece)."""
    parts: list[str] = []
    size = 0
    while size < length or not parts:
        piece = sentence(rng, unicode_ratio)
        if piece in CODE and rng.random() < 0.5:
            piece = "```\n" + piece + "```"
        parts.append(piece)
        size += len(piece) + 1
    return rng.choice((" ", "\n", "\n\n")).join(parts)


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, count)))


def split_deltas(rng: random.Random, text: str, max_size: int = 20) -> Iterator[str]:
    """Cut ``text`` into streaming deltas of 1..max_size code points.

    Cuts fall anywhere, including between a base letter and its combining mark
    or inside an emoji ZWJ sequence: real tokenisers do that too, and whoever
    concatenates the deltas must cope.
    """
    pos = 0
    end = len(text)
    while pos < end:
        size = rng.choice(_DELTA_SIZES)
        if size > max_size:
            size = max_size
        yield text[pos : pos + size]
        pos += size


def code_block(rng: random.Random, length: int) -> str:
    """About ``length`` characters of source-like text (a file body, a diff)."""
    lines: list[str] = []
    size = 0
    while size < length:
        piece = rng.choice(CODE)
        lines.append(piece)
        size += len(piece)
    return "".join(lines)


def command_output(rng: random.Random, length: int) -> str:
    """About ``length`` characters of tool output: test logs, grep hits, listings."""
    lines: list[str] = []
    size = 0
    number = rng.randrange(1, 400)
    while size < length:
        kind = rng.random()
        if kind < 0.4:
            line = f"src/{rng.choice(WORDS)}/{rng.choice(WORDS)}.py:{number}: {rng.choice(CODE).splitlines()[0]}"
        elif kind < 0.7:
            status = rng.choice(("PASSED", "PASSED", "PASSED", "FAILED", "SKIPPED"))
            line = f"tests/test_{rng.choice(WORDS)}.py::test_{rng.choice(WORDS)}_{number} {status}"
        elif kind < 0.9:
            line = f"{number:5d}  {words(rng, rng.randrange(3, 12))}"
        else:
            line = rng.choice(PROSE)
        lines.append(line)
        size += len(line) + 1
        number += 1
    return "\n".join(lines)


def big_blob(rng: random.Random, size: int) -> str:
    """A string of exactly ``size`` characters built from whole corpus lines (fast)."""
    pool = [command_output(rng, 4000) for _ in range(8)]
    parts: list[str] = []
    total = 0
    while total < size:
        piece = rng.choice(pool)
        parts.append(piece)
        total += len(piece) + 1
    return "\n".join(parts)[:size]
