"""Sample ratio mismatch: did each variant get the share of units it was meant to?

A broken assignment or a logging bug often shows up first as the wrong split (50.8% / 49.2%
of a million units is not chance). Pearson's χ² compares observed units o_i with the counts
expected from the weights, e_i = w_i·Σo:

    χ² = Σ (o_i − e_i)² / e_i,  k − 1 degrees of freedom,  p = P(χ²_{k−1} ≥ χ²).

The split is flagged when p < threshold (0.001 by default: SRM checks run on every snapshot, so
a strict level keeps false alarms rare, and real mismatches give far smaller p).

That χ² p-value is valid for one look. Checked on every snapshot it flags healthy experiments
more often than the threshold says (each look is another chance). The sequential test of Lindon
& Malek (2022, "Anytime-valid inference for multinomial count data", NeurIPS) is valid at every
look at once. Against the null "units arrive as a multinomial with the design weights w" it puts
a Dirichlet(α) prior on the true split, α_i = c·w_i, and computes the Bayes factor of the
Dirichlet–multinomial to the null multinomial for the cumulative counts x (n = Σx):

    log BF_n = lnΓ(Σα) − lnΓ(Σα + n) + Σ[lnΓ(α_i + x_i) − lnΓ(α_i)] − Σ x_i·ln w_i,
    p_n = min(1, 1/BF_n).

(The multinomial coefficients cancel, so BF_n is also the likelihood ratio of the ordered
sequence of units.) Under the null BF_n is a non-negative martingale with mean 1, so by Ville's
inequality P(BF_n ≥ 1/α for some n) ≤ α: the running minimum of p_n over any looks, at any
times, chosen in any data-dependent way, is a valid p-value. Callers keep that running minimum
(``sequential_srm_update``). Two conditions: x must be the counts since the start of the
experiment (not of a window), and the weights must be those the whole period was run with (a
reallocation starts a new test).

The prior concentration c (default 1000) sets which mismatches the test is quickest at: the
prior puts the share of a 50/50 arm at 0.5 ± √(w(1 − w)/(c + 1)) ≈ ± 1.6 percentage points.
The paper leaves c as a tuning choice; Optimizely's ``ssrm`` defaults to 10 000 and ``savvi``'s
Multinomial to 100. In our simulations (50/50 and 80/20 designs, 100–200 runs each, flag at
p_n < 0.001) c = 1000 needed at most ~1.25× the median units of the best c in {10², …, 10⁵}
for every mismatch from 0.2 to 5 points of share, while 10 000 needed 2.5× at 5 points and 100
needed 1.35× at 0.2 points. A misjudged c costs only logarithmically, so one default serves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from analysis.stats.inputs import StatsInputError

DEFAULT_SRM_THRESHOLD = 0.001
DEFAULT_SRM_PRIOR_CONCENTRATION = 1000.0


@dataclass(frozen=True, slots=True)
class SRMResult:
    p_value: float | None
    observed: dict[str, int]
    expected_weights: dict[str, float]
    flagged: bool
    threshold: float = DEFAULT_SRM_THRESHOLD
    reason: str | None = None
    # Running minimum of the always-valid p-value over the looks so far (None: not computed),
    # and when (a snapshot time or id, as the caller records it) it first went below threshold.
    sequential_p_value: float | None = None
    first_flagged_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "p_value": self.p_value,
            "observed": dict(self.observed),
            "expected_weights": dict(self.expected_weights),
            "flagged": self.flagged,
            "threshold": self.threshold,
            "sequential_p_value": self.sequential_p_value,
        }
        if self.reason is not None:
            result["reason"] = self.reason
        if self.first_flagged_at is not None:
            result["first_flagged_at"] = self.first_flagged_at
        return result


def _normalised_weights(keys: Sequence[object], weights: Sequence[float] | None) -> list[float]:
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


def sequential_srm_log_bayes_factor(
    counts: ArrayLike, weights: Sequence[float], prior_concentration: float | None = None
) -> NDArray[np.float64]:
    """log BF_n of the Dirichlet–multinomial mixture against the design weights.

    ``counts`` has the arms on its last axis (one look, or any stack of looks or experiments:
    the leading axes broadcast), ``weights`` one entry per arm, normalised to sum to 1.
    Returns an array of the leading shape: +inf where a zero-weight arm has units.
    """
    x = np.asarray(counts, dtype=float)
    if x.ndim == 0 or x.shape[-1] != len(weights):
        raise StatsInputError({"counts": "one count per weight is needed"})
    if not np.all(np.isfinite(x)) or np.any(x < 0.0):
        raise StatsInputError({"counts": "counts must be finite and not negative"})
    c = DEFAULT_SRM_PRIOR_CONCENTRATION if prior_concentration is None else prior_concentration
    if not (0.0 < c < float("inf")):
        raise StatsInputError({"prior_concentration": "must be positive and finite"})
    w = np.asarray(_normalised_weights(list(weights), weights))
    positive = w > 0.0
    # An arm meant to get no units gets no prior mass either (lnΓ(0) is infinite); a unit in
    # it is impossible under the null, so the evidence against the null is infinite.
    impossible = np.any(x[..., ~positive] > 0.0, axis=-1)
    x, w = x[..., positive], w[positive]
    alpha = c * w
    n = x.sum(axis=-1)
    log_bf = (
        special.gammaln(alpha.sum())
        - special.gammaln(alpha.sum() + n)
        + (special.gammaln(alpha + x) - special.gammaln(alpha)).sum(axis=-1)
        - (x * np.log(w)).sum(axis=-1)
    )
    return np.where(impossible, np.inf, log_bf)


def sequential_srm_p_value(
    counts: Sequence[int], weights: Sequence[float], prior_concentration: float | None = None
) -> float:
    """Always-valid SRM p-value at one look: min(1, 1/BF_n) for the cumulative ``counts``.

    Valid on its own at any look; across looks report the running minimum (see
    ``sequential_srm_update``). No units gives 1; units in a zero-weight arm give 0.
    """
    log_bf = float(sequential_srm_log_bayes_factor(counts, weights, prior_concentration))
    # exp underflows to 0 for overwhelming evidence, which is the right limit.
    return 1.0 if log_bf <= 0.0 else math.exp(-log_bf)


def sequential_srm_update(
    previous_min_p: float | None,
    counts: Sequence[int],
    weights: Sequence[float],
    prior_concentration: float | None = None,
) -> float:
    """Fold one look into the running minimum p (pass ``None`` before the first look)."""
    p_value = sequential_srm_p_value(counts, weights, prior_concentration)
    return p_value if previous_min_p is None else min(previous_min_p, p_value)
