"""Variantlab's statistics engine: pure functions over sufficient statistics, no Django.

Start with ``analyze`` (one metric, all variants) and ``obrien_fleming_boundaries``; the
modules hold the pieces, each opening with its formulas. docs/statistics.md explains the
methods and when to pick which.
"""

from analysis.stats.analyze import (
    AnalysisResult,
    Comparison,
    VariantSummary,
    analyze,
    correct_comparisons,
    decide,
    json_float,
)
from analysis.stats.cuped import cuped_adjusted_moments, cuped_theta, pooled_covariate_mean
from analysis.stats.fixed import (
    EffectEstimate,
    IntervalTest,
    difference_estimate,
    welch_satterthwaite_df,
    welch_test,
)
from analysis.stats.group_sequential import (
    GroupSequentialBoundaries,
    boundary_inflation_factor,
    classical_obrien_fleming_boundaries,
    crossing_probabilities,
    equal_information_fractions,
    group_sequential_p_value,
    group_sequential_test,
    obrien_fleming_boundaries,
    obrien_fleming_spending,
)
from analysis.stats.inputs import (
    METRIC_TYPES,
    StatsInputError,
    VariantStats,
    check_variants,
    validate_variants,
    variants_from_dicts,
)
from analysis.stats.moments import (
    ArmMoments,
    Undefined,
    arm_moments,
    ratio_delta_variance,
    sample_covariance,
    sample_variance,
)
from analysis.stats.multiple_testing import CORRECTIONS, adjust_p_values
from analysis.stats.power import SampleSizePlan, sample_size
from analysis.stats.sequential import (
    DEFAULT_SEQUENTIAL_TUNING,
    SequentialState,
    confidence_sequence_half_width,
    mixture_rho_squared,
    msprt_p_value,
    sequential_state_update,
    sequential_test,
)
from analysis.stats.srm import DEFAULT_SRM_THRESHOLD, SRMResult, sample_ratio_mismatch

__all__ = [
    "CORRECTIONS",
    "DEFAULT_SEQUENTIAL_TUNING",
    "DEFAULT_SRM_THRESHOLD",
    "METRIC_TYPES",
    "AnalysisResult",
    "ArmMoments",
    "Comparison",
    "EffectEstimate",
    "GroupSequentialBoundaries",
    "IntervalTest",
    "SRMResult",
    "SampleSizePlan",
    "SequentialState",
    "StatsInputError",
    "Undefined",
    "VariantStats",
    "VariantSummary",
    "adjust_p_values",
    "analyze",
    "arm_moments",
    "boundary_inflation_factor",
    "check_variants",
    "classical_obrien_fleming_boundaries",
    "confidence_sequence_half_width",
    "correct_comparisons",
    "crossing_probabilities",
    "cuped_adjusted_moments",
    "cuped_theta",
    "decide",
    "difference_estimate",
    "equal_information_fractions",
    "group_sequential_p_value",
    "group_sequential_test",
    "json_float",
    "mixture_rho_squared",
    "msprt_p_value",
    "obrien_fleming_boundaries",
    "obrien_fleming_spending",
    "pooled_covariate_mean",
    "ratio_delta_variance",
    "sample_covariance",
    "sample_ratio_mismatch",
    "sample_size",
    "sample_variance",
    "sequential_state_update",
    "sequential_test",
    "validate_variants",
    "variants_from_dicts",
    "welch_satterthwaite_df",
    "welch_test",
]
