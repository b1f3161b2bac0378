"""The generated logs the official-client checks run on: every testkit shape at a few seeds.

One definition, so the equivalence tests and the harness's own checks (its fast
``structuredClone`` against the client's native one) cover the same corpus.
"""

from __future__ import annotations

from agui_testkit.shapes import SHAPES

SEEDS = (1, 2, 3)

# (shape, seed) of every generated log in the corpus.
GENERATED_CORPUS = [(shape, seed) for shape in sorted(SHAPES) for seed in SEEDS]
