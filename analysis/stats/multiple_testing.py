"""Multiple testing: many metrics × treatments give many chances of a false win.

Raw p-values p_1 … p_m sorted ascending as p_(1) ≤ … ≤ p_(m):

- Holm (1979), controls the family-wise error rate (chance of *any* false positive) at α:
  adjusted p_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)).
- Benjamini–Hochberg (1995), controls the false discovery rate (expected share of false
  positives among the wins): adjusted p_(i) = min_{j ≥ i} min(1, m/j · p_(j)).
- ``none``: adjusted = raw.

Undefined p-values (None) are left out of the family and stay None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Correction = Literal["holm", "bh", "none"]
CORRECTIONS: tuple[str, ...] = ("holm", "bh", "none")


def adjust_p_values(p_values: Sequence[float | None], method: str = "holm") -> list[float | None]:
    """Adjusted p-values in the input order."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; use one of {', '.join(CORRECTIONS)}")
    adjusted: list[float | None] = [None] * len(p_values)
    present = sorted(
        ((p, index) for index, p in enumerate(p_values) if p is not None), key=lambda t: t[0]
    )
    m = len(present)
    if method == "none":
        return [None if p is None else min(1.0, max(0.0, p)) for p in p_values]
    if method == "holm":
        running = 0.0
        for rank, (p, index) in enumerate(present):
            running = max(running, min(1.0, (m - rank) * p))
            adjusted[index] = running
        return adjusted
    running = 1.0
    for rank in range(m - 1, -1, -1):
        p, index = present[rank]
        running = min(running, m / (rank + 1) * p)
        adjusted[index] = min(1.0, running)
    return adjusted
