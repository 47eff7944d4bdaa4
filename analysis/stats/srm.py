"""Sample ratio mismatch: did each variant get the share of units it was meant to?

A broken assignment or a logging bug often shows up first as the wrong split (50.8% / 49.2%
of a million units is not chance). Pearson's χ² compares observed units o_i with the counts
expected from the weights, e_i = w_i·Σo:

    χ² = Σ (o_i − e_i)² / e_i,  k − 1 degrees of freedom,  p = P(χ²_{k−1} ≥ χ²).

The split is flagged when p < threshold (0.001 by default: SRM checks run on every snapshot, so
a strict level keeps false alarms rare, and real mismatches give far smaller p).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import special

from analysis.stats.inputs import StatsInputError

DEFAULT_SRM_THRESHOLD = 0.001


@dataclass(frozen=True, slots=True)
class SRMResult:
    p_value: float | None
    observed: dict[str, int]
    expected_weights: dict[str, float]
    flagged: bool
    threshold: float = DEFAULT_SRM_THRESHOLD
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "p_value": self.p_value,
            "observed": dict(self.observed),
            "expected_weights": dict(self.expected_weights),
            "flagged": self.flagged,
            "threshold": self.threshold,
        }
        if self.reason is not None:
            result["reason"] = self.reason
        return result


def _normalised_weights(keys: Sequence[str], weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0 / len(keys)] * len(keys)
    if len(weights) != len(keys):
        raise StatsInputError({"expected_weights": "one weight per variant is needed"})
    if any(not (w >= 0.0) or w == float("inf") for w in weights):
        raise StatsInputError({"expected_weights": "weights must be finite and not negative"})
    total = float(sum(weights))
    if total <= 0.0:
        raise StatsInputError({"expected_weights": "at least one weight must be positive"})
    return [w / total for w in weights]


def sample_ratio_mismatch(
    observed: Mapping[str, int],
    expected_weights: Sequence[float] | None = None,
    threshold: float = DEFAULT_SRM_THRESHOLD,
) -> SRMResult:
    """Pearson χ² test of observed units per variant against the expected weights.

    ``expected_weights`` is in the order of ``observed`` (equal when omitted) and is normalised
    to sum to 1. Raises StatsInputError only for impossible weights.
    """
    keys = list(observed)
    weights = _normalised_weights(keys, expected_weights)
    named_weights = dict(zip(keys, weights, strict=True))
    counts = [int(observed[key]) for key in keys]
    total = sum(counts)
    if len(keys) < 2 or total == 0:
        # Nothing to compare: one variant, or no units yet.
        return SRMResult(None, dict(observed), named_weights, False, threshold, "no_units")
    statistic = 0.0
    for count, weight in zip(counts, weights, strict=True):
        expected = weight * total
        if expected == 0.0:
            if count > 0:
                # Units in a variant meant to get none: a mismatch by definition.
                return SRMResult(
                    0.0, dict(observed), named_weights, True, threshold, "units_in_zero_weight"
                )
            continue
        statistic += (count - expected) ** 2 / expected
    degrees = sum(1 for w in weights if w > 0.0) - 1
    if degrees < 1:
        return SRMResult(None, dict(observed), named_weights, False, threshold, "one_weighted_arm")
    p_value = float(special.chdtrc(degrees, statistic))
    return SRMResult(p_value, dict(observed), named_weights, p_value < threshold, threshold)
