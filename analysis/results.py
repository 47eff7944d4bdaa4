"""A snapshot's results as types: frozen dataclasses, built by one pure function (issue #13).

`snapshot_look` takes what a look needs (each metric's sufficient statistics, the previous
look's `DecisionState`, the SRM basis, the exposure diagnostics, names and aggregations),
runs the decision rule (`analysis.stats.decisions.decide_look`) and returns `SnapshotResults`
with the new state. No ORM, no database: the snapshot service gathers the inputs and stores
the outputs.

`SnapshotResults.to_json()` is the results JSON of docs/api.md §8, key for key and in the
order the API has always sent; `SnapshotResults.from_json()` reads any stored snapshot, older
ones included: a key written by a later version takes its default (the value the readers
assumed when it was missing). Every reader of `Snapshot.results` (summary text, dashboard,
exports' summary table, SRM alerts) reads these types, not the JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from analysis.stats.analyze import Comparison, VariantSummary, json_float
from analysis.stats.decisions import (
    DecisionSettings,
    DecisionState,
    Look,
    LookResult,
    MetricInput,
    Warning,
    decide_look,
)
from analysis.stats.decisions import MetricResult as MetricLook
from analysis.stats.srm import DEFAULT_SRM_THRESHOLD, SRMResult

# A stored interval: [low, high], either bound null when it is not finite (JSON has no inf).
Interval = tuple[float | None, float | None]


# ------------------------------------------------------------------------------ JSON readers
# Stored JSON is trusted to be ours, but older versions wrote fewer keys: read leniently, and
# keep numbers as stored (an int stays an int, so a round trip gives the same JSON).


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _integer(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _interval(value: Any) -> Interval | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    return (_number(value[0]), _number(value[1]))


def _interval_json(value: Interval | None) -> list[float | None] | None:
    return None if value is None else [value[0], value[1]]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ------------------------------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class VariantResult:
    """One arm as analysed: units and per-unit mean and variance (null when undefined)."""

    variant: str
    units: int
    mean: float | None
    variance: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "units": self.units,
            "mean": self.mean,
            "variance": self.variance,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VariantResult:
        return cls(
            variant=str(data.get("variant", "")),
            units=_integer(data.get("units")) or 0,
            mean=_number(data.get("mean")),
            variance=_number(data.get("variance")),
        )


@dataclass(frozen=True, slots=True)
class ComparisonResult:
    """A treatment against the control (docs/api.md §7, §8)."""

    variant: str
    baseline: str
    absolute_effect: float | None = None
    absolute_ci: Interval | None = None
    relative_effect: float | None = None
    relative_ci: Interval | None = None
    p_value: float | None = None
    adjusted_p_value: float | None = None
    significant: bool = False
    decision: str = "inconclusive"
    reason: str | None = None
    direction: str = "increase"
    statistic: float | None = None
    # The interval the verdict is read from; results stored before corrections had only
    # absolute_ci, which was then the deciding one (see `deciding_ci`).
    adjusted_ci: Interval | None = None
    effective_alpha: float | None = None
    variance: float | None = None
    total_units: int | None = None
    # Sent only when set: group sequential looks, guardrails.
    z_boundary: float | None = None
    harm: bool | None = None

    @property
    def deciding_ci(self) -> Interval | None:
        return self.adjusted_ci or self.absolute_ci

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "variant": self.variant,
            "baseline": self.baseline,
            "absolute_effect": self.absolute_effect,
            "absolute_ci": _interval_json(self.absolute_ci),
            "relative_effect": self.relative_effect,
            "relative_ci": _interval_json(self.relative_ci),
            "p_value": self.p_value,
            "adjusted_p_value": self.adjusted_p_value,
            "significant": self.significant,
            "decision": self.decision,
            "reason": self.reason,
            "direction": self.direction,
            "statistic": self.statistic,
            "adjusted_ci": _interval_json(self.adjusted_ci),
            "effective_alpha": self.effective_alpha,
            "variance": self.variance,
            "total_units": self.total_units,
        }
        if self.z_boundary is not None:
            result["z_boundary"] = self.z_boundary
        if self.harm is not None:
            result["harm"] = self.harm
        return result

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComparisonResult:
        harm = data.get("harm")
        return cls(
            variant=str(data.get("variant", "")),
            baseline=str(data.get("baseline", "")),
            absolute_effect=_number(data.get("absolute_effect")),
            absolute_ci=_interval(data.get("absolute_ci")),
            relative_effect=_number(data.get("relative_effect")),
            relative_ci=_interval(data.get("relative_ci")),
            p_value=_number(data.get("p_value")),
            adjusted_p_value=_number(data.get("adjusted_p_value")),
            significant=bool(data.get("significant")),
            decision=_text(data.get("decision")) or "inconclusive",
            reason=_text(data.get("reason")),
            direction=_text(data.get("direction")) or "increase",
            statistic=_number(data.get("statistic")),
            adjusted_ci=_interval(data.get("adjusted_ci")),
            effective_alpha=_number(data.get("effective_alpha")),
            variance=_number(data.get("variance")),
            total_units=_integer(data.get("total_units")),
            z_boundary=_number(data.get("z_boundary")),
            harm=harm if isinstance(harm, bool) else None,
        )


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric: its arms, each treatment's comparison and the engine's notes (codes)."""

    metric: str
    name: str
    aggregation: str
    metric_type: str
    direction: str
    role: str
    cuped: bool
    variants: tuple[VariantResult, ...]
    comparisons: tuple[ComparisonResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """What people call the metric: its name, else its key."""
        return self.name or self.metric

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "name": self.name,
            "aggregation": self.aggregation,
            "metric_type": self.metric_type,
            "direction": self.direction,
            "role": self.role,
            "cuped": self.cuped,
            "variants": [v.to_json() for v in self.variants],
            "comparisons": [c.to_json() for c in self.comparisons],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricResult:
        return cls(
            metric=str(data.get("metric", "")),
            name=_text(data.get("name")) or "",
            aggregation=_text(data.get("aggregation")) or "",
            metric_type=_text(data.get("metric_type")) or "",
            direction=_text(data.get("direction")) or "increase",
            role=_text(data.get("role")) or "",
            cuped=bool(data.get("cuped")),
            variants=tuple(VariantResult.from_json(v) for v in _items(data.get("variants")) if v),
            comparisons=tuple(
                ComparisonResult.from_json(c) for c in _items(data.get("comparisons")) if c
            ),
            notes=tuple(str(n) for n in _items(data.get("notes"))),
        )


def srm_from_json(data: Mapping[str, Any]) -> SRMResult:
    """The engine's SRM result (analysis.stats.srm) as a snapshot stored it."""
    threshold = _number(data.get("threshold"))
    return SRMResult(
        p_value=_number(data.get("p_value")),
        observed=dict(_mapping(data.get("observed"))),
        expected_weights=dict(_mapping(data.get("expected_weights"))),
        flagged=bool(data.get("flagged")),
        threshold=DEFAULT_SRM_THRESHOLD if threshold is None else threshold,
        sequential_p_value=_number(data.get("sequential_p_value")),
        reason=_text(data.get("reason")),
        first_flagged_at=_text(data.get("first_flagged_at")),
    )


@dataclass(frozen=True, slots=True)
class LookInfo:
    """Which look this was (group sequential: its number, fraction and boundary)."""

    number: int = 0
    information_fraction: float | None = None
    z_boundary: float | None = None
    final: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "information_fraction": self.information_fraction,
            "z_boundary": self.z_boundary,
            "final": self.final,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LookInfo:
        return cls(
            number=_integer(data.get("number")) or 0,
            information_fraction=_number(data.get("information_fraction")),
            z_boundary=_number(data.get("z_boundary")),
            final=bool(data.get("final")),
        )


@dataclass(frozen=True, slots=True)
class ResultWarning:
    code: str
    message: str
    metric: str | None = None

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.metric is not None:
            result["metric"] = self.metric
        return result

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResultWarning:
        return cls(
            code=str(data.get("code", "")),
            message=str(data.get("message", "")),
            metric=_text(data.get("metric")),
        )


@dataclass(frozen=True, slots=True)
class GuardrailAlert:
    """A guardrail × treatment whose harm test says harm."""

    metric: str
    variant: str

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "variant": self.variant}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GuardrailAlert:
        return cls(metric=str(data.get("metric", "")), variant=str(data.get("variant", "")))


@dataclass(frozen=True, slots=True)
class ExposureDayCount:
    """Analysed units first exposed on one UTC day in one variant."""

    # The ISO day ("2026-11-27"), as stored: readers that need a date parse it.
    date: str
    variant: str
    units: int

    def to_json(self) -> dict[str, Any]:
        return {"date": self.date, "variant": self.variant, "units": self.units}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExposureDayCount:
        return cls(
            date=str(data.get("date", "")),
            variant=str(data.get("variant", "")),
            units=_integer(data.get("units")) or 0,
        )


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """What the analysis excluded or should warn about (docs/api.md §8 ``diagnostics``)."""

    units_by_variant: dict[str, int]
    multiple_variant_units: int = 0
    mismatched_exposures: int = 0
    exposures_by_day: tuple[ExposureDayCount, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "units_by_variant": dict(self.units_by_variant),
            "multiple_variant_units": self.multiple_variant_units,
            "mismatched_exposures": self.mismatched_exposures,
            "exposures_by_day": [d.to_json() for d in self.exposures_by_day],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Diagnostics:
        return cls(
            units_by_variant=dict(_mapping(data.get("units_by_variant"))),
            multiple_variant_units=_integer(data.get("multiple_variant_units")) or 0,
            mismatched_exposures=_integer(data.get("mismatched_exposures")) or 0,
            exposures_by_day=tuple(
                ExposureDayCount.from_json(d)
                for d in _items(data.get("exposures_by_day"))
                if isinstance(d, Mapping)
            ),
        )


@dataclass(frozen=True, slots=True)
class SnapshotResults:
    """A finished snapshot's results; `to_json()` is the §8 JSON the API sends."""

    experiment: str
    snapshot_id: int | None
    # Set when the snapshot is stored (an ISO time); None while it is being computed.
    computed_at: str | None
    method: str
    alpha: float
    correction: str
    look: LookInfo
    warnings: tuple[ResultWarning, ...]
    srm: SRMResult
    metrics: tuple[MetricResult, ...]
    # None only in results stored before the decision rule kept it.
    guardrail_status: str | None
    guardrail_alerts: tuple[GuardrailAlert, ...]
    diagnostics: Diagnostics
    planned_sample_size: int | None
    # None only in results stored before it was kept: then the SRM's observed units count.
    total_units: int | None
    summary: str = ""

    @property
    def analysed_units(self) -> int:
        if self.total_units:
            return self.total_units
        return sum(self.srm.observed.values())

    def metric_names(self) -> dict[str, str]:
        """Metric key → what people call it, for alerts and warnings."""
        return {m.metric: m.label for m in self.metrics}

    def to_json(self) -> dict[str, Any]:
        # The key order is the one the API has always sent (engine part first).
        return {
            "method": self.method,
            "alpha": self.alpha,
            "correction": self.correction,
            "look": self.look.to_json(),
            "warnings": [w.to_json() for w in self.warnings],
            "srm": self.srm.to_dict(),
            "metrics": [m.to_json() for m in self.metrics],
            "guardrail_status": self.guardrail_status,
            "guardrail_alerts": [a.to_json() for a in self.guardrail_alerts],
            "experiment": self.experiment,
            "snapshot_id": self.snapshot_id,
            "computed_at": self.computed_at,
            "diagnostics": self.diagnostics.to_json(),
            "planned_sample_size": self.planned_sample_size,
            "total_units": self.total_units,
            "summary": self.summary,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SnapshotResults:
        alpha = _number(data.get("alpha"))
        return cls(
            experiment=str(data.get("experiment", "")),
            snapshot_id=_integer(data.get("snapshot_id")),
            computed_at=_text(data.get("computed_at")),
            method=_text(data.get("method")) or "",
            alpha=0.05 if alpha is None else alpha,
            correction=_text(data.get("correction")) or "",
            look=LookInfo.from_json(_mapping(data.get("look"))),
            warnings=tuple(
                ResultWarning.from_json(w)
                for w in _items(data.get("warnings"))
                if isinstance(w, Mapping)
            ),
            srm=srm_from_json(_mapping(data.get("srm"))),
            metrics=tuple(
                MetricResult.from_json(m)
                for m in _items(data.get("metrics"))
                if isinstance(m, Mapping)
            ),
            guardrail_status=_text(data.get("guardrail_status")),
            guardrail_alerts=tuple(
                GuardrailAlert.from_json(a)
                for a in _items(data.get("guardrail_alerts"))
                if isinstance(a, Mapping)
            ),
            diagnostics=Diagnostics.from_json(_mapping(data.get("diagnostics"))),
            planned_sample_size=_integer(data.get("planned_sample_size")),
            total_units=_integer(data.get("total_units")),
            summary=_text(data.get("summary")) or "",
        )


# ------------------------------------------------------------------- from the engine's types


def _engine_interval(value: tuple[float, float] | None) -> Interval | None:
    return None if value is None else (json_float(value[0]), json_float(value[1]))


def variant_result(variant: VariantSummary) -> VariantResult:
    return VariantResult(
        variant=variant.variant,
        units=variant.units,
        mean=json_float(variant.mean),
        variance=json_float(variant.variance),
    )


def comparison_result(c: Comparison) -> ComparisonResult:
    """The engine's comparison as stored: non-finite numbers become null (JSON has none)."""
    return ComparisonResult(
        variant=c.variant,
        baseline=c.baseline,
        absolute_effect=json_float(c.absolute_effect),
        absolute_ci=_engine_interval(c.absolute_ci),
        relative_effect=json_float(c.relative_effect),
        relative_ci=_engine_interval(c.relative_ci),
        p_value=json_float(c.p_value),
        adjusted_p_value=json_float(c.adjusted_p_value),
        significant=c.significant,
        decision=c.decision,
        reason=c.reason,
        direction=c.direction,
        statistic=json_float(c.statistic),
        adjusted_ci=_engine_interval(c.adjusted_ci),
        effective_alpha=json_float(c.effective_alpha),
        variance=json_float(c.variance),
        total_units=c.total_units,
        z_boundary=json_float(c.z_boundary),
        harm=c.harm,
    )


def metric_result(
    metric: MetricLook, *, name: str | None = None, aggregation: str | None = None
) -> MetricResult:
    """A decided metric; without a name or an aggregation (POST /stats) its key and type."""
    return MetricResult(
        metric=metric.key,
        name=metric.key if name is None else name,
        aggregation=metric.metric_type if aggregation is None else aggregation,
        metric_type=metric.metric_type,
        direction=metric.direction,
        role=metric.role,
        cuped=metric.cuped,
        variants=tuple(variant_result(v) for v in metric.variants),
        comparisons=tuple(comparison_result(c) for c in metric.comparisons),
        notes=tuple(metric.notes),
    )


def look_info(look: Look) -> LookInfo:
    return LookInfo(look.number, look.information_fraction, look.z_boundary, look.final)


def warning_result(warning: Warning) -> ResultWarning:
    return ResultWarning(warning.code, warning.message, warning.metric)


# ------------------------------------------------------------------------------ the builder


@dataclass(frozen=True, slots=True)
class SnapshotInputs:
    """Everything a snapshot's look needs, gathered by the snapshot service."""

    experiment: str
    snapshot_id: int | None
    settings: DecisionSettings
    # Variant keys, control first: the analysed units are counted over these.
    variants: tuple[str, ...]
    # Each linked metric's sufficient statistics per arm (control first).
    metrics: tuple[MetricInput, ...]
    diagnostics: Diagnostics
    # The SRM test's basis (docs/api.md §7: after a rollback, the live arms since then).
    srm_observed: Mapping[str, int]
    srm_weights: tuple[float, ...]
    names: Mapping[str, str]
    aggregations: Mapping[str, str]
    # When the look is taken (ISO time): the SRM flag records it.
    at: str | None = None

    @property
    def analysed_units(self) -> int:
        """Exposed units less multiple-variant ones, over the experiment's variants."""
        return sum(self.diagnostics.units_by_variant.get(key, 0) for key in self.variants)


@dataclass(frozen=True, slots=True)
class SnapshotLook:
    """A snapshot's look: its results, the engine's decided look (for the comparison rows)
    and the state the next look starts from."""

    results: SnapshotResults
    look: LookResult
    state: DecisionState


def snapshot_look(inputs: SnapshotInputs, previous: DecisionState | None) -> SnapshotLook:
    """Decide this look from the inputs and the previous look's state; build its results."""
    look, state = decide_look(
        inputs.settings,
        inputs.metrics,
        previous,
        analysed_units=inputs.analysed_units,
        observed_units=inputs.srm_observed,
        expected_weights=list(inputs.srm_weights),
        at=inputs.at,
    )
    return SnapshotLook(results=snapshot_results(look, inputs), look=look, state=state)


def snapshot_results(look: LookResult, inputs: SnapshotInputs) -> SnapshotResults:
    """The results of a decided look, with its summary text."""
    results = SnapshotResults(
        experiment=inputs.experiment,
        snapshot_id=inputs.snapshot_id,
        computed_at=None,
        method=look.method,
        alpha=look.alpha,
        correction=look.correction,
        look=look_info(look.look),
        warnings=tuple(warning_result(w) for w in look.warnings),
        srm=look.srm,
        metrics=tuple(
            metric_result(
                m,
                name=inputs.names.get(m.key, m.key),
                aggregation=inputs.aggregations.get(m.key, m.metric_type),
            )
            for m in look.metrics
        ),
        guardrail_status=look.guardrail_status,
        guardrail_alerts=tuple(GuardrailAlert(metric, variant) for metric, variant in look.harms),
        diagnostics=inputs.diagnostics,
        planned_sample_size=inputs.settings.planned_sample_size,
        total_units=inputs.analysed_units,
    )
    return replace(results, summary=results_summary(results))


# ---------------------------------------------------------------------------- summary text

REASON_TEXT = {
    "too_few_units": "not enough units yet in each arm",
    "plan_not_reached": "waiting for the planned sample size",
    "heavy_tail": "values too skewed for this many units yet",
    "awaiting_first_look": "waiting for the first planned look",
    "zero_variance": "no variation in the data yet",
    "zero_control_mean": "the control's mean is 0, so no relative change exists",
    "relative_unbounded": "the control's mean is too uncertain for a relative interval",
    "relative_overflow": "the relative change is too large to compute",
    "zero_denominator": "the ratio's denominator is 0",
    "ratio_overflow": "the ratio is too large to compute",
    "numerical_overflow": "the numbers are too large to compute",
    "cuped_zero_covariate_variance": "CUPED off: no unit had pre-exposure data",
    "cuped_missing_covariate": "CUPED off: pre-exposure data missing",
    "cuped_not_supported_for_ratio": "CUPED does not apply to ratio metrics",
    "undefined": "not computable from these data",
}
INTERVAL_TEXT = {
    "sequential": "always-valid interval",
    "fixed": "interval",
    "group_sequential": "repeated interval",
}
VERDICT_TEXT = {
    "win": "significant win",
    "loss": "significant loss",
    "inconclusive": "not significant yet",
}
GUARDRAIL_SUMMARY_TEXT = {
    "no_guardrails": "No guardrails.",
    "not_enough_data": "Guardrails: not enough data yet.",
    "no_harm_detected": "Guardrails: no harm detected.",
}


def reason_text(code: str | None) -> str:
    """A reason code in words (the dashboard and summary never show a raw code)."""
    if not code:
        return ""
    return REASON_TEXT.get(code, code.replace("_", " "))


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def _comparison_sentence(
    results: SnapshotResults, metric: MetricResult, c: ComparisonResult
) -> str:
    subject = f"{c.variant} vs {c.baseline} on {metric.label}"
    deciding = c.deciding_ci
    if c.decision == "not_ready" or deciding is None:
        why = reason_text(c.reason) or "not enough data yet"
        return f"{subject}: no verdict yet ({why})."
    level = round((1 - (c.effective_alpha or results.alpha)) * 100, 2)
    low, high = c.relative_ci or (None, None)
    if low is not None and high is not None:
        span = f"{_percent(low)} to {_percent(high)}"
    else:
        a_low, a_high = deciding
        span = f"{a_low:+.4g} to {a_high:+.4g} (absolute)"
    interval = INTERVAL_TEXT[results.method]
    return f"{subject}: {level:g}% {interval} {span}; {VERDICT_TEXT[c.decision]}."


def results_summary(results: SnapshotResults) -> str:
    """One plain-language paragraph a product manager can act on.

    Every verdict is read off the deciding interval (docs/api.md §7), so the words can never
    contradict the numbers printed next to them.
    """
    parts: list[str] = []
    srm = results.srm
    if srm.flagged:
        since = (
            f" (first flagged {srm.first_flagged_at[:16].replace('T', ' ')} UTC)"
            if srm.first_flagged_at
            else ""
        )
        parts.append(
            f"Sample ratio mismatch{since}: units are not split as configured, so the "
            "results cannot be trusted until the cause is found."
        )
    primary = [m for m in results.metrics if m.role == "primary"]
    parts.extend(
        _comparison_sentence(results, metric, c) for metric in primary for c in metric.comparisons
    )
    if not primary:
        parts.append("No primary metric is configured.")
    status = results.guardrail_status or "no_guardrails"
    if status == "harm_detected":
        # Metrics by the name people gave them, as in the tables above (keys are for code).
        names = results.metric_names()
        harms = ", ".join(
            f"{a.variant} harms {names.get(a.metric, a.metric)}" for a in results.guardrail_alerts
        )
        parts.append(f"Guardrails: harm detected ({harms}).")
    else:
        parts.append(GUARDRAIL_SUMMARY_TEXT[status])
    if results.method == "group_sequential" and results.look.final:
        parts.append("The final look has been taken: these results no longer change.")
    return " ".join(parts)


def exposure_days(
    entries: Iterable[ExposureDayCount | Mapping[str, Any]],
) -> list[ExposureDayCount]:
    """Typed exposure days from typed ones or stored JSON entries (callers may hold either)."""
    return [
        e if isinstance(e, ExposureDayCount) else ExposureDayCount.from_json(e) for e in entries
    ]
