"""The results dashboard in the admin: an experiments overview and one results page each.

Server-rendered: the views turn selector output into display rows (numbers already formatted)
and SVG strings from `analysis.charts`, so the templates only lay them out. `ExperimentAdmin`
mounts the three views under its URLs; the admin site's `admin_view` wrapper lets only staff in.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe

from analysis import charts
from analysis.dashboard_selectors import (
    GuardrailLink,
    ResultsData,
    experiment_results,
    experiments_overview,
    guardrail_history,
    guardrail_links,
    metric_names,
)
from analysis.models import SnapshotState
from analysis.results import (
    ComparisonResult,
    Diagnostics,
    ExposureDayCount,
    Interval,
    MetricResult,
    SnapshotResults,
    exposure_days,
    reason_text,
)
from analysis.stats import sample_size
from analysis.stats.decisions import GUARDRAIL_STATUS_TEXT
from core.errors import ServiceError
from experiments.models import Aggregation, Experiment
from experiments.selectors import rollbacks_list
from experiments.services import experiment_save

# Without a planned sample size the page estimates one for this relative change of the first
# primary metric; the page says so, and setting `planned_sample_size` replaces it.
DEFAULT_RELATIVE_MDE = 0.05
TRAFFIC_WINDOW_DAYS = 7
DASH = "—"
DECISION_TEXT = {
    "win": "win",
    "loss": "loss",
    "inconclusive": "inconclusive",
    "not_ready": "not ready",
}
GS_TEXT = "look {number} of {planned} at {fraction:.0%} of the planned units (needs |z| ≥ {z:.3g})"


# --- formatting ------------------------------------------------------------------------------


def fmt_number(value: float | None, digits: int = 4) -> str:
    """Four significant digits, thousands separated: 12.35, 0.04812, 1,234,567."""
    if value is None or not math.isfinite(value):
        return DASH
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    if value != 0 and abs(value) < 1e-4:
        return f"{value:.{digits - 1}e}"
    return f"{value:,.{digits}g}"


def fmt_percent(value: float | None, signed: bool = True, decimals: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value * 100:{'+' if signed else ''}.{decimals}f}%"


def fmt_p(value: float | None) -> str:
    if value is None:
        return DASH
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def fmt_interval(pair: Interval | None, formatter: Any) -> str:
    if not pair or pair[0] is None or pair[1] is None:
        return ""
    return f"[{formatter(pair[0])}, {formatter(pair[1])}]"


def _mean_formatter(aggregation: str) -> Any:
    if aggregation == Aggregation.CONVERSION:
        return lambda v: fmt_percent(v, signed=False, decimals=2)
    return fmt_number


def _absolute_formatter(aggregation: str) -> Any:
    if aggregation == Aggregation.CONVERSION:
        # A difference of two proportions reads best in percentage points.
        return lambda v: DASH if v is None else f"{v * 100:+.2f} pp"

    def signed(value: float | None) -> str:
        text = fmt_number(value)
        return text if text == DASH or text.startswith("-") else f"+{text}"

    return signed


def _is_proportion(aggregation: str, means: list[float]) -> bool:
    """Conversions, and ratios whose arms all lie in [0, 1] (a click-through rate: clicks over
    impressions), read as percentages; a ratio like revenue per order does not."""
    if aggregation == Aggregation.CONVERSION:
        return True
    return aggregation == Aggregation.RATIO and bool(means) and all(0 <= m <= 1 for m in means)


def fixed_decimals(means: list[float]) -> int:
    """One precision for a whole metric: four significant digits of its largest arm mean, so
    means, effects and intervals line up ("67.82", "+1.57 [+0.41, +2.72]")."""
    largest = max((abs(m) for m in means), default=0.0)
    if largest == 0 or not math.isfinite(largest):
        return 2
    return max(0, min(6, 3 - math.floor(math.log10(largest))))


def metric_formatters(aggregation: str, means: list[float]) -> tuple[Any, Any]:
    """(mean formatter, absolute-effect formatter) of one metric, the same for all its rows."""
    if _is_proportion(aggregation, means):
        return _mean_formatter(Aggregation.CONVERSION), _absolute_formatter(Aggregation.CONVERSION)
    digits = fixed_decimals(means)

    def mean(value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return DASH
        return f"{value:,.{digits}f}"

    def signed(value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return DASH
        return f"{value:+,.{digits}f}"

    return mean, signed


def _days_running(experiment: Experiment, now: dt.datetime) -> int | None:
    if experiment.started_at is None:
        return None
    end = experiment.stopped_at or now
    return max(0, (end - experiment.started_at).days)


def running_text(experiment: Experiment, now: dt.datetime) -> str:
    """ "3 days running", "started today", "ran 2 days", "ran less than a day"."""
    days = _days_running(experiment, now)
    if days is None:
        return "not started"
    if experiment.stopped_at is not None:
        return "ran less than a day" if days == 0 else f"ran {days} day{'s' if days != 1 else ''}"
    return "started today" if days == 0 else f"{days} day{'s' if days != 1 else ''} running"


def level_text(comparison: ComparisonResult, alpha: float | None) -> str:
    level = comparison.effective_alpha or alpha
    return "" if level is None else f"{(1 - float(level)) * 100:.4g}%"


# --- overview --------------------------------------------------------------------------------


def overview_view(request: HttpRequest, model_admin: admin.ModelAdmin) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    now = timezone.now()
    names = metric_names()
    rows = []
    for row in experiments_overview():
        e = row.experiment
        verdicts = [
            {
                "text": f"{names.get(metric, metric)} · {variant}: {fmt_percent(relative)}",
                "decision": decision or "inconclusive",
                "decision_text": DECISION_TEXT.get(decision or "inconclusive", decision),
            }
            for metric, variant, decision, relative in row.primary
        ]
        rows.append(
            {
                "experiment": e,
                "results_url": reverse("admin:experiments_experiment_results", args=[e.pk]),
                "change_url": reverse("admin:experiments_experiment_change", args=[e.pk]),
                "days": _days_running(e, now),
                "running_text": running_text(e, now),
                "units": [(k, f"{v:,}") for k, v in row.units_by_variant.items()],
                "analysed": row.snapshot_id is not None,
                "computed_at": row.computed_at,
                "srm_flagged": row.srm_flagged,
                "srm_p": fmt_p(row.srm_p_value),
                "verdicts": verdicts,
                "alerts": [
                    f"{a.variant} harms {names.get(a.metric, a.metric)}"
                    for a in row.guardrail_alerts
                ],
                "shipped": e.shipped_variant if e.status == "stopped" else "",
                "guardrail_status": row.guardrail_status,
            }
        )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Experiment._meta,
        "title": "Experiments dashboard",
        "rows": rows,
        "changelist_url": reverse("admin:experiments_experiment_changelist"),
    }
    return TemplateResponse(request, "admin/analysis/overview.html", context)


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    planned: int | None
    source: str  # "experiment" | "estimated" | "none"
    note: str


def planned_sample_size(experiment: Experiment, results: SnapshotResults) -> Plan:
    """The experiment's planned size, else an estimate from the first primary metric's control."""
    if experiment.planned_sample_size:
        return Plan(experiment.planned_sample_size, "experiment", "planned on the experiment")
    primary = [m for m in results.metrics if m.role == "primary"]
    weights = list(results.srm.expected_weights.values())
    if not primary or len(weights) < 2:
        return Plan(None, "none", "no plan: set a planned sample size on the experiment")
    metric = primary[0]
    control = metric.variants[0] if metric.variants else None
    mean = control.mean if control else None
    variance = control.variance if control else None
    aggregation = metric.aggregation
    try:
        if mean is None or aggregation == Aggregation.RATIO:
            raise ValueError("no baseline")
        plan = sample_size(
            "proportion" if aggregation == Aggregation.CONVERSION else "mean",
            float(mean),
            DEFAULT_RELATIVE_MDE,
            standard_deviation=math.sqrt(variance) if variance else None,
            alpha=float(results.alpha),
            variants=len(weights),
            weights=weights,
            method=experiment.method,
            sequential_tuning=experiment.sequential_tuning,
            planned_looks=experiment.planned_looks or 5,
        )
    except (ValueError, ArithmeticError):
        return Plan(None, "none", "no plan: set a planned sample size on the experiment")
    note = (
        f"estimated: enough to detect a {DEFAULT_RELATIVE_MDE:.0%} relative change in "
        f"{metric.label} from the control's current baseline "
        f"({_mean_formatter(aggregation)(mean)}); set a planned sample size to replace it"
    )
    return Plan(plan.total_units, "estimated", note)


def recent_daily_units(
    exposures_by_day: Iterable[ExposureDayCount | Mapping[str, Any]],
    *,
    started_at: dt.datetime | None = None,
    as_of: dt.datetime | None = None,
) -> float | None:
    """Units per day over the last 7 days of data (fewer if the experiment is younger).

    With `started_at` and `as_of` (the analysis time) the rate is taken over the time really
    observed, not over calendar days: 5 units in the first minutes are not "5 units/day".
    Less than a day observed gives None: a rate from a few hours would be a guess.
    """
    totals: dict[dt.date, int] = defaultdict(int)
    for entry in exposure_days(exposures_by_day):
        try:
            totals[dt.date.fromisoformat(entry.date)] += entry.units
        except ValueError:
            continue  # not a day: nothing to count
    if not totals:
        return None
    if started_at is not None and as_of is not None:
        since = max(started_at, as_of - dt.timedelta(days=TRAFFIC_WINDOW_DAYS))
        span = (as_of - since).total_seconds() / 86_400
        if span < 1:
            return None
        return sum(u for day, u in totals.items() if day >= since.date()) / span
    last, first = max(totals), min(totals)
    window_start = last - dt.timedelta(days=TRAFFIC_WINDOW_DAYS - 1)
    days = (last - max(first, window_start)).days + 1
    return sum(u for day, u in totals.items() if day >= window_start) / days


def observed_days(started_at: dt.datetime | None, as_of: dt.datetime) -> float:
    """How many days of traffic the rate is over (at most the 7-day window)."""
    if started_at is None:
        return 0.0
    return min(TRAFFIC_WINDOW_DAYS, max(0.0, (as_of - started_at).total_seconds() / 86_400))


def expected_days(total_units: int, plan: Plan, daily: float | None) -> tuple[int | None, str]:
    if plan.planned is None:
        return None, "unknown without a planned sample size"
    remaining = plan.planned - total_units
    if remaining <= 0:
        return 0, "the planned sample size is reached"
    if not daily:
        return None, "unknown: less than a day of traffic in the last 7 days"
    days = math.ceil(remaining / daily)
    return days, (
        f"{days} day{'s' if days != 1 else ''} for the remaining {remaining:,} units at "
        f"{daily:,.0f} units/day"
    )


def _metric_tables(metrics: Sequence[MetricResult], alpha: float | None) -> list[dict[str, Any]]:
    tables = []
    for metric in metrics:
        aggregation = metric.aggregation
        means = [
            float(v.mean) for v in metric.variants if v.mean is not None and math.isfinite(v.mean)
        ]
        mean_fmt, abs_fmt = metric_formatters(aggregation, means)
        comparisons = {c.variant: c for c in metric.comparisons}
        rows = []
        for variant in metric.variants:
            c = comparisons.get(variant.variant)
            row: dict[str, Any] = {
                "variant": variant.variant,
                "units": f"{variant.units or 0:,}",
                "mean": mean_fmt(variant.mean),
                "is_baseline": c is None,
            }
            if c is not None:
                decision = c.decision or "inconclusive"
                row.update(
                    absolute=abs_fmt(c.absolute_effect),
                    absolute_ci=fmt_interval(c.deciding_ci, abs_fmt),
                    level=level_text(c, alpha) if c.deciding_ci else "",
                    relative=fmt_percent(c.relative_effect),
                    relative_ci=fmt_interval(c.relative_ci, fmt_percent),
                    p_value=fmt_p(c.p_value),
                    adjusted_p_value=fmt_p(c.adjusted_p_value),
                    decision=decision,
                    decision_text=DECISION_TEXT.get(decision, decision),
                    harm=c.harm,
                    reason=reason_text(c.reason),
                )
            rows.append(row)
        tables.append(
            {
                "key": metric.metric,
                "name": metric.label,
                "role": metric.role,
                "aggregation": aggregation,
                "direction": metric.direction,
                "cuped": metric.cuped,
                "notes": [reason_text(note) for note in metric.notes],
                "rows": rows,
            }
        )
    return tables


def _forest_rows(metrics: Sequence[MetricResult]) -> list[charts.ForestRow]:
    rows = []
    for metric in metrics:
        for c in metric.comparisons:
            low, high = c.relative_ci or (None, None)
            rows.append(
                charts.ForestRow(
                    label=f"{metric.label} · {c.variant}",
                    estimate=c.relative_effect,
                    low=low,
                    high=high,
                    decision=c.decision or "inconclusive",
                )
            )
    return rows


def _over_time(data: ResultsData, names: dict[str, str]) -> list[dict[str, Any]]:
    series: dict[tuple[str, str], list[charts.EffectPoint]] = {}
    for at, metric, variant, estimate, low, high in data.history:
        if at is None:
            continue  # not a finished snapshot: it has no place in time
        series.setdefault((metric, variant), []).append(
            charts.EffectPoint(at, estimate, low, high)
        )
    return [
        {
            "metric": names.get(metric, metric),
            "variant": variant,
            "svg": mark_safe(  # the charts escape every text they draw
                charts.effect_over_time(
                    points, title=f"{names.get(metric, metric)} · {variant} over time"
                )
            ),
        }
        for (metric, variant), points in series.items()
    ]


def _exposures_chart(diagnostics: Diagnostics) -> str:
    entries = diagnostics.exposures_by_day
    days = sorted({e.date for e in entries})
    order = list(diagnostics.units_by_variant.keys())
    order += sorted({e.variant for e in entries} - set(order))
    counts = {(e.date, e.variant): e.units for e in entries}
    series = [(v, [counts.get((d, v), 0) for d in days]) for v in order]
    return charts.exposures_bars(days, series)


def results_context(data: ResultsData, now: dt.datetime) -> dict[str, Any]:
    """Everything the results template shows, formatted; no queries."""
    experiment = data.experiment
    context: dict[str, Any] = {"experiment": experiment, "active": data.active}
    results = data.snapshot.typed_results() if data.snapshot is not None else None
    if data.snapshot is None or results is None:
        return context
    metrics = results.metrics
    diagnostics = results.diagnostics
    srm = results.srm
    total = results.analysed_units
    plan = planned_sample_size(experiment, results)
    as_of = data.snapshot.computed_at or now
    daily = recent_daily_units(
        diagnostics.exposures_by_day, started_at=experiment.started_at, as_of=as_of
    )
    span = observed_days(experiment.started_at, as_of)
    days, days_text = expected_days(total, plan, daily)
    names = results.metric_names()
    context.update(
        snapshot=data.snapshot,
        summary=results.summary,
        method=results.method,
        alpha=results.alpha,
        correction=results.correction,
        srm={
            "flagged": srm.flagged,
            "p_value": fmt_p(srm.p_value),
            "rows": [
                {
                    "variant": variant,
                    "observed": f"{srm.observed.get(variant, 0):,}",
                    "expected": f"{total * float(weight):,.0f}",
                    "weight": f"{float(weight):.0%}",
                }
                for variant, weight in srm.expected_weights.items()
            ],
            "sequential_p_value": fmt_p(srm.sequential_p_value),
            "first_flagged_at": srm.first_flagged_at,
        },
        guardrail_alerts=[
            {"metric": names.get(a.metric, a.metric), "variant": a.variant}
            for a in results.guardrail_alerts
        ],
        guardrail_status=results.guardrail_status,
        guardrail_text=GUARDRAIL_STATUS_TEXT.get(results.guardrail_status or "", ""),
        look=_look_text(results, experiment),
        warnings=[
            {"metric": names.get(w.metric, w.metric) if w.metric else None, "message": w.message}
            for w in results.warnings
        ],
        tables=_metric_tables(metrics, results.alpha),
        forest_svg=mark_safe(charts.forest_plot(_forest_rows(metrics))),
        over_time=_over_time(data, names),
        exposures_svg=mark_safe(_exposures_chart(diagnostics)),
        total_units=f"{total:,}",
        plan=plan,
        planned=f"{plan.planned:,}" if plan.planned else None,
        progress_percent=f"{total / plan.planned:.0%}" if plan.planned else None,
        progress_svg=mark_safe(charts.progress_bar(total, plan.planned)),
        daily_units=f"{daily:,.0f}" if daily else None,
        daily_span=(
            f"the last {span:.0f} days" if span >= TRAFFIC_WINDOW_DAYS else f"{span:.1f} days"
        ),
        expected_days=days,
        expected_days_text=days_text,
        expected_date=(now + dt.timedelta(days=days)).date() if days else None,
        multiple_variant_units=f"{diagnostics.multiple_variant_units:,}",
        mismatched_exposures=f"{diagnostics.mismatched_exposures:,}",
        days_running=_days_running(experiment, now),
        running_text=running_text(experiment, now),
    )
    return context


def _look_text(results: SnapshotResults, experiment: Experiment) -> str:
    look = results.look
    method = results.method
    if method == "group_sequential":
        if not look.number:
            fraction = look.information_fraction or 0.0
            return (
                f"Group sequential: no look yet ({fraction:.0%} of the planned units; the "
                f"first look comes at {1 / (experiment.planned_looks or 5):.0%})."
            )
        text = GS_TEXT.format(
            number=look.number,
            planned=experiment.planned_looks or 5,
            fraction=look.information_fraction or 0.0,
            z=look.z_boundary or 0.0,
        )
        final = " This look is final: the results no longer change." if look.final else ""
        return f"Group sequential: {text}.{final}"
    if method == "fixed":
        if look.number:
            return "Fixed horizon: analysed once, at the planned sample size."
        return "Fixed horizon: no verdict until the planned sample size is reached."
    return (
        "Always-valid intervals: each is the intersection of every analysis's interval so "
        "far, so it can be narrower than the interval of the latest analysis alone."
    )


def _harm_side_bound(
    state: dict[str, Any], link: GuardrailLink
) -> tuple[float, float, bool, bool] | None:
    """(bound, threshold, harm_above, relative) of one guardrail comparison's state, as the
    harm test reads it (`analysis.stats.decisions._harmful`): the running always-valid
    interval's bound on the harmful side against 0, or against the relative harm margin."""
    intervals = state.get("intervals") or {}
    if not intervals:
        return None  # not ready yet: no interval
    # The level in use is the newest key (it changes only if the number of guardrails does).
    absolute, relative = list(intervals.values())[-1][:2]
    harm_above = link.direction == "decrease"  # a rise is harm (latency, errors, cost)
    side = 0 if harm_above else 1
    if link.harm_margin:
        if relative is None:
            return None
        threshold = link.harm_margin if harm_above else -link.harm_margin
        return float(relative[side]), threshold, harm_above, True
    if absolute is None:
        return None
    return float(absolute[side]), 0.0, harm_above, False


def rollout_panel(
    links: list[GuardrailLink],
    history: list[tuple[dt.datetime, str, dict[str, Any]]],
    rollbacks: list[dict[str, Any]],
) -> dict[str, Any]:
    """The rollout panel (issue 10): per guardrail × treatment, the harm-side always-valid
    bound over the GuardrailCheck chain against its threshold, with the rollback marked."""
    rolled = {r["variant"]: r for r in rollbacks}
    series: dict[tuple[str, str], list[charts.BoundPoint]] = {}
    shape: dict[tuple[str, str], tuple[float, bool, bool]] = {}
    harmed: dict[tuple[str, str], bool] = {}
    by_key = {link.metric: link for link in links}
    for at, _source, states in history:
        for pair, state in (states or {}).items():
            metric, _, variant = pair.partition("|")
            link = by_key.get(metric)
            if link is None:
                continue
            read = _harm_side_bound(state, link)
            if read is None:
                continue
            bound, threshold, harm_above, relative = read
            series.setdefault((metric, variant), []).append(charts.BoundPoint(at, bound))
            shape[(metric, variant)] = (threshold, harm_above, relative)
            harmed[(metric, variant)] = bool(state.get("harm"))
    charts_out = []
    for (metric, variant), points in series.items():
        threshold, harm_above, relative = shape[(metric, variant)]
        rollback = rolled.get(variant)
        name = by_key[metric].name
        last = points[-1].bound
        charts_out.append(
            {
                "metric": name,
                "variant": variant,
                "harm": harmed[(metric, variant)],
                "threshold": (
                    charts.percent_label(threshold) if relative else fmt_number(threshold)
                ),
                "bound": fmt_percent(last) if relative else fmt_number(last),
                "kind": "relative" if relative else "absolute",
                "svg": mark_safe(  # the chart escapes every text it draws
                    charts.guardrail_bound_over_time(
                        points,
                        threshold=threshold,
                        harm_above=harm_above,
                        relative=relative,
                        marker_at=rollback["at"] if rollback else None,
                        marker_label=f"{variant} rolled back",
                        title=f"{name} · {variant}: harm-side bound over time",
                    )
                ),
            }
        )
    return {
        "charts": charts_out,
        "checks": len(history),
        "last_check": history[-1][0] if history else None,
        "rollbacks": rollbacks,
    }


def results_view(
    request: HttpRequest, model_admin: admin.ModelAdmin, object_id: int
) -> HttpResponse:
    # Counted in the experiment's own query: the rollback banner and the rollout panel cost
    # nothing without a rollback or a guardrail.
    # `.first()` rather than get_object_or_404: django-stubs keeps the annotations' types
    # through a queryset's `first()`, not through the shortcut.
    experiment = (
        Experiment.objects.annotate(
            rolled_back=Count(
                "variants", filter=Q(variants__rolled_back_at__isnull=False), distinct=True
            ),
            guardrail_total=Count("metrics", filter=Q(metrics__role="guardrail"), distinct=True),
        )
        .filter(pk=object_id)
        .first()
    )
    if experiment is None:
        raise Http404("No experiment matches the given query.")
    if not model_admin.has_view_permission(request, experiment):
        raise PermissionDenied
    rollbacks = rollbacks_list(experiment) if experiment.rolled_back else []
    links = guardrail_links(experiment=experiment) if experiment.guardrail_total else []
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Experiment._meta,
        "original": experiment,
        "title": f"Results: {experiment.name}",
        "subtitle": experiment.key,
        "can_analyze": model_admin.has_change_permission(request, experiment),
        "dashboard_url": reverse("admin:experiments_experiment_dashboard"),
        "change_url": reverse("admin:experiments_experiment_change", args=[experiment.pk]),
        "rollbacks": rollbacks,
        "rollout": rollout_panel(links, guardrail_history(experiment=experiment), rollbacks)
        if links
        else None,
        **results_context(experiment_results(experiment=experiment), timezone.now()),
    }
    return TemplateResponse(request, "admin/analysis/results.html", context)


class PlannerForm(forms.Form):
    metric_type = forms.ChoiceField(
        choices=[("proportion", "Conversion (proportion)"), ("mean", "Mean")],
        initial="proportion",
    )
    baseline = forms.FloatField(help_text="The control's rate (e.g. 0.1) or mean.")
    relative_mde = forms.FloatField(
        initial=0.05, min_value=0.0001, help_text="Smallest relative change worth finding."
    )
    standard_deviation = forms.FloatField(
        required=False, min_value=0.0, help_text="Mean metrics only: per-unit spread."
    )
    power = forms.FloatField(initial=0.8, min_value=0.5, max_value=0.99)
    daily_units = forms.FloatField(required=False, min_value=1.0)


def plan_view(request: HttpRequest, model_admin: admin.ModelAdmin, object_id: int) -> HttpResponse:
    """The sample-size planner for one experiment; a draft can take the result as its plan."""
    experiment = get_object_or_404(Experiment, pk=object_id)
    if not model_admin.has_view_permission(request, experiment):
        raise PermissionDenied
    using = request.method == "POST" and "use" in request.POST
    if using and not model_admin.has_change_permission(request, experiment):
        raise PermissionDenied
    form = PlannerForm(request.POST or request.GET or None)
    plan, error = None, ""
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        weights = [v.weight for v in experiment.variants.order_by("-is_control", "position")]
        try:
            plan = sample_size(
                data["metric_type"],
                data["baseline"],
                data["relative_mde"],
                standard_deviation=data["standard_deviation"],
                alpha=experiment.alpha,
                power=data["power"],
                variants=max(2, len(weights)),
                weights=weights if len(weights) >= 2 else None,
                method=experiment.method,
                sequential_tuning=experiment.sequential_tuning,
                planned_looks=experiment.planned_looks or 5,
                daily_units=data["daily_units"],
            )
        except (ValueError, ArithmeticError) as exc:
            error = str(exc)
    if plan is not None and request.method == "POST" and "use" in request.POST:
        if not model_admin.has_change_permission(request, experiment):
            raise PermissionDenied
        try:
            experiment_save(data={"planned_sample_size": plan.total_units}, experiment=experiment)
        except ServiceError as exc:
            model_admin.message_user(request, exc.message, messages.ERROR)
        else:
            model_admin.message_user(
                request,
                f"{experiment.key}: planned sample size set to {plan.total_units:,} units.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(
                reverse("admin:experiments_experiment_change", args=[experiment.pk])
            )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Experiment._meta,
        "original": experiment,
        "title": f"Plan the sample size: {experiment.name}",
        "form": form,
        "plan": plan,
        "error": error,
        "can_use": experiment.status == "draft"
        and model_admin.has_change_permission(request, experiment),
        "change_url": reverse("admin:experiments_experiment_change", args=[experiment.pk]),
    }
    return TemplateResponse(request, "admin/analysis/plan.html", context)


def analyze_view(
    request: HttpRequest, model_admin: admin.ModelAdmin, object_id: int
) -> HttpResponse:
    """POST: queue a snapshot now (or join the one in progress), then go back."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    experiment = get_object_or_404(Experiment, pk=object_id)
    if not model_admin.has_change_permission(request, experiment):
        raise PermissionDenied
    from analysis.services import snapshot_request

    snapshot = snapshot_request(experiment=experiment)
    # Without a broker the task ran eagerly on commit: report what happened, not "queued".
    snapshot.refresh_from_db(fields=["state", "error"])
    if snapshot.state == SnapshotState.DONE:
        model_admin.message_user(
            request, f"{experiment.key}: analysis #{snapshot.pk} finished.", messages.SUCCESS
        )
    elif snapshot.state == SnapshotState.FAILED:
        model_admin.message_user(
            request, f"{experiment.key}: analysis #{snapshot.pk} failed.", messages.ERROR
        )
    else:
        model_admin.message_user(
            request,
            f"{experiment.key}: analysis #{snapshot.pk} is {snapshot.state}; "
            "refresh this page in a minute.",
            messages.INFO,
        )
    fallback = reverse("admin:experiments_experiment_results", args=[experiment.pk])
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = fallback
    return HttpResponseRedirect(target)
