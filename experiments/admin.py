"""Admin for product teams: experiments with their variants, metrics and QA overrides.

Status changes and validation go through the same services and rules as the API.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from variantlab_client.engine import assign

# The statistics engine is pure (no Django, no app): the admin's sample-size planner uses it.
from analysis.stats import sample_size
from audit.selectors import audit_list
from core.errors import ServiceError
from experiments import services
from experiments.admin_lifecycle import (
    MOVES,
    assignment_reason_text,
    lifecycle_steps,
    move_text,
)
from experiments.models import (
    ApiKey,
    ApiKeyScope,
    Experiment,
    ExperimentMetric,
    ForcedAssignment,
    Layer,
    Metric,
    Status,
    Variant,
)
from experiments.selectors import experiment_config_build, metric_json
from experiments.services import (
    ANALYSIS_FIELDS,
    FROZEN_ANALYSIS_FIELDS,
    FROZEN_METRIC_FIELDS,
    FROZEN_REASON,
)
from experiments.validation import (
    LIVE_STATUSES,
    VariantSpec,
    frozen_variant_errors,
    variant_set_errors,
)

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _VariantTotal(TypedDict):
    variant_total: int


class _ExperimentTotal(TypedDict):
    experiment_total: int


# Variantlab's own name on every admin page (not "Django administration"); "View site" goes to
# the results dashboard, which `/` also redirects to.
admin.site.site_header = "Variantlab"
admin.site.site_title = "Variantlab"
admin.site.index_title = "Experiments, metrics and results"
admin.site.site_url = "/"

ABOUT_FIELDS = ("key", "name", "hypothesis", "owner")
TRAFFIC_FIELDS = (
    "seed",
    "hash_version",
    "coverage",
    "condition",
    "layer",
    "layer_start",
    "layer_end",
)


class PrettyJSONWidget(forms.Textarea):
    """A monospace textarea that shows JSON indented, so payloads are easy to read and edit."""

    def __init__(self, rows: int = 4) -> None:
        super().__init__(
            attrs={
                "rows": rows,
                "cols": 60,
                "class": "vl-json",
                "style": "font-family: monospace;",
            }
        )

    def get_context(self, name: str, value: Any, attrs: dict | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        # Tall enough for the whole document: a JSON payload is never cut off in a scroll box.
        lines = context["widget"]["value"].count("\n") + 1 if context["widget"]["value"] else 1
        rows = max(int(self.attrs.get("rows", 4)), lines + 1)
        context["widget"]["attrs"]["rows"] = rows
        return context

    def format_value(self, value: Any) -> str:
        if value is None or value == "":
            return ""  # an empty box, not the word "null"
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        return json.dumps(value, indent=2, sort_keys=True)


class VariantInlineFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if any(form.errors for form in self.forms):
            return
        # The form instances, not cleaned_data: while live, key, weight and control are
        # read-only and so absent from cleaned_data; the instance holds their stored values.
        kept = [
            form.instance
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        specs = [VariantSpec(v.key, v.weight, v.is_control) for v in kept]
        problems = variant_set_errors(specs)
        if self.instance.pk and self.instance.status in LIVE_STATUSES:
            current = [
                VariantSpec(v.key, v.weight, v.is_control) for v in self.instance.variants.all()
            ]
            problems += frozen_variant_errors(current, specs)
        if problems:
            raise ValidationError(problems)


class VariantInline(admin.TabularInline):
    model = Variant
    formset = VariantInlineFormSet
    fields = ("key", "name", "weight", "is_control", "payload", "position")
    extra = 0
    min_num = 2
    formfield_overrides = {}

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "payload":
            kwargs["widget"] = PrettyJSONWidget()
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> tuple:
        if obj is not None and obj.status in LIVE_STATUSES:
            return ("key", "weight", "is_control")
        if obj is not None and obj.status in services.CLOSED_STATUSES:
            return self.fields
        return ()

    def has_add_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return (obj is None or obj.status == Status.DRAFT) and super().has_add_permission(
            request, obj
        )

    def has_delete_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return (obj is None or obj.status == Status.DRAFT) and super().has_delete_permission(
            request, obj
        )


class FrozenWhenStoppedInline(admin.TabularInline):
    """A stopped experiment can no longer change (the service refuses): show it read-only."""

    def _open(self, obj: Experiment | None) -> bool:
        return obj is None or obj.status not in services.CLOSED_STATUSES

    def has_add_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return self._open(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return self._open(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return self._open(obj) and super().has_delete_permission(request, obj)


class ExperimentMetricInline(FrozenWhenStoppedInline):
    model = ExperimentMetric
    extra = 0
    autocomplete_fields = ("metric",)
    fields = ("metric", "role", "harm_margin")

    # Metric roles are analysis settings: frozen once the experiment has started.
    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> tuple:
        if obj is not None and obj.status != Status.DRAFT:
            return self.fields
        return ()

    def has_add_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return (obj is None or obj.status == Status.DRAFT) and super().has_add_permission(
            request, obj
        )

    def has_delete_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return (obj is None or obj.status == Status.DRAFT) and super().has_delete_permission(
            request, obj
        )


class ForcedAssignmentInline(FrozenWhenStoppedInline):
    model = ForcedAssignment
    extra = 0
    verbose_name_plural = "Forced assignments (QA units; never analysed)"

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "variant":
            match = request.resolver_match
            object_id = match.kwargs.get("object_id") if match is not None else None
            kwargs["queryset"] = Variant.objects.filter(experiment_id=object_id or 0)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


FROZEN_REASONS: dict[str, str] = {
    Status.RUNNING: "Running: the key, seed, hash version, layer and the variants' keys, "
    "weights and control are frozen so no unit changes variant; coverage, condition and "
    "texts may change.",
    Status.PAUSED: "Paused: the key, seed, hash version, layer and the variants' keys, weights "
    "and control stay frozen until the experiment stops.",
    Status.STOPPED: "Stopped: the configuration can no longer change (the results refer to "
    "it). Create a new experiment to test again. A shipped variant is served to every unit "
    "until the experiment is archived.",
    Status.ARCHIVED: "Archived: no longer served by /assign, /config or /features; the "
    "configuration and results stay for reference.",
}


def experiment_admin_data(experiment: Experiment, formsets: list) -> dict[str, Any]:
    """The admin's form and inlines as `experiment_save`'s data (the API's shape).

    `experiment` is the form's instance: the edited values over the stored ones, read-only
    fields included, so frozen values pass through unchanged and the service judges them.
    """
    data: dict[str, Any] = {f: getattr(experiment, f) for f in services.PLAIN_FIELDS}
    data["analysis"] = {f: getattr(experiment, f) for f in services.ANALYSIS_FIELDS}
    data["model_guardrails"] = experiment.model_guardrails
    layer = experiment.layer  # no query without a layer
    data["layer"] = (
        {"key": layer.key, "start": experiment.layer_start, "end": experiment.layer_end}
        if layer is not None
        else None
    )
    for formset in formsets:
        kept = [
            form.instance
            for form in formset.forms
            if form.is_valid()
            and not form.cleaned_data.get("DELETE")
            and (form.instance.pk or form.has_changed())
        ]
        if formset.model is Variant:
            kept.sort(key=lambda v: v.position)
            data["variants"] = [
                {
                    "key": v.key,
                    "name": v.name,
                    "weight": v.weight,
                    "is_control": v.is_control,
                    "payload": v.payload,
                }
                for v in kept
            ]
        elif formset.model is ExperimentMetric:
            data["metrics"] = [{"metric": link.metric.key, "role": link.role} for link in kept]
        elif formset.model is ForcedAssignment:
            data["forced_assignments"] = {f.unit_id: f.variant.key for f in kept}
    return data


def changed_only(data: dict[str, Any], stored: Experiment) -> dict[str, Any]:
    """Only what the admin user changed, as a PATCH: a rule about a field (a freeze) then
    applies when that field is edited, exactly as through the API."""
    state = services.experiment_state(stored.pk)
    changed = {f: data[f] for f in services.PLAIN_FIELDS if data[f] != getattr(stored, f)}
    analysis = {f: v for f, v in data["analysis"].items() if v != getattr(stored, f)}
    if analysis:
        changed["analysis"] = analysis
    for field in ("layer", "variants", "metrics", "forced_assignments", "model_guardrails"):
        if field in data and data[field] != state[field]:
            changed[field] = data[field]
    return changed


PLANNER_FIELDS = ("plan_metric_type", "plan_baseline", "plan_mde", "plan_sd", "plan_daily_units")


class ExperimentForm(forms.ModelForm):
    # The sample-size planner of the create page (the `<id>/plan/` page's computation): with a
    # baseline, and no planned sample size typed in, saving fills `planned_sample_size`.
    plan_metric_type = forms.ChoiceField(
        label="Primary metric type",
        choices=[("proportion", "Conversion (proportion)"), ("mean", "Mean")],
        initial="proportion",
        required=False,
    )
    plan_baseline = forms.FloatField(
        label="Baseline",
        required=False,
        help_text="The control's current rate (e.g. 0.12) or mean.",
    )
    plan_mde = forms.FloatField(
        label="Minimum detectable effect",
        required=False,
        initial=0.05,
        min_value=0.0001,
        help_text="The smallest relative change worth finding (0.05 = 5 %).",
    )
    plan_sd = forms.FloatField(
        label="Standard deviation",
        required=False,
        min_value=0.0,
        help_text="Mean metrics only: the per-unit spread.",
    )
    plan_daily_units = forms.FloatField(
        label="Traffic (units per day)",
        required=False,
        min_value=1.0,
        help_text="Units entering the experiment per day, all variants together.",
    )

    class Meta:
        model = Experiment
        fields = (
            *ABOUT_FIELDS,
            *TRAFFIC_FIELDS,
            "planned_sample_size",
            "model_guardrails",
            *ANALYSIS_FIELDS,
        )
        widgets = {"condition": PrettyJSONWidget(rows=6)}


def planned_from_form(cleaned: dict[str, Any], data: dict[str, Any]) -> Any:
    """The planner's `SampleSizePlan` for a new experiment's form, or None when not asked for
    (no baseline) or when a planned sample size was typed in. ValueError: impossible inputs."""
    if cleaned.get("planned_sample_size") or cleaned.get("plan_baseline") is None:
        return None
    analysis = data.get("analysis", {})
    variants = data.get("variants") or []
    weights = [v["weight"] for v in sorted(variants, key=lambda v: not v["is_control"])]
    return sample_size(
        cleaned.get("plan_metric_type") or "proportion",
        cleaned["plan_baseline"],
        cleaned.get("plan_mde") or 0.05,
        standard_deviation=cleaned.get("plan_sd"),
        alpha=analysis.get("alpha") or 0.05,
        variants=max(2, len(weights)),
        weights=weights if len(weights) >= 2 else None,
        method=analysis.get("method") or "sequential",
        sequential_tuning=analysis.get("sequential_tuning"),
        planned_looks=analysis.get("planned_looks") or 5,
        daily_units=cleaned.get("plan_daily_units"),
    )


class PreviewForm(forms.Form):
    preview_unit_id = forms.CharField(label="Unit id", max_length=256)
    preview_attributes = forms.CharField(
        label="Attributes (JSON object)", required=False, widget=PrettyJSONWidget(rows=3)
    )

    def clean_preview_attributes(self) -> dict:
        raw = self.cleaned_data["preview_attributes"] or "{}"
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise ValidationError("Attributes must be a JSON object.")
        return value


class RoleCheckedActionsMixin(admin.ModelAdmin):
    """An admin action the user may not run is a 403, not a silent "no action selected"."""

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            actions = {k: v for k, v in actions.items() if k == "delete_selected"}
        return actions

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        action = request.POST.get("action", "") if request.method == "POST" else ""
        if action and action not in self.get_actions(request):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)


@admin.register(Experiment)
class ExperimentAdmin(RoleCheckedActionsMixin, admin.ModelAdmin):
    # Pages other apps hang under this admin's URLs: each provider takes this admin and returns
    # URL patterns (analysis/admin.py registers the results dashboard), so experiments does not
    # import the stages above it.
    url_providers: ClassVar[list[Callable[[ExperimentAdmin], list[URLPattern]]]] = []

    form = ExperimentForm
    change_form_template = "admin/experiments/experiment/change_form.html"
    # Adds a link to the results dashboard above the list; otherwise the stock change list.
    change_list_template = "admin/analysis/experiment_change_list.html"
    list_display = ("key", "name", "status", "layer", "variant_count", "owner", "started_at")
    list_filter = ("status", "layer", "method")
    search_fields = ("key", "name", "owner", "hypothesis")
    list_select_related = ("layer",)
    inlines = (VariantInline, ExperimentMetricInline, ForcedAssignmentInline)
    actions = ("start_selected", "pause_selected", "stop_selected", "archive_selected")
    readonly_fields = (
        "status",
        "shipped_variant",
        "started_at",
        "stopped_at",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ABOUT_FIELDS}),
        ("State", {"fields": readonly_fields}),
        ("Traffic", {"fields": (*TRAFFIC_FIELDS[:4], TRAFFIC_FIELDS[4:])}),
        ("Analysis", {"fields": ("planned_sample_size", "model_guardrails", *ANALYSIS_FIELDS)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Experiment]:
        return super().get_queryset(request).annotate(variant_total=Count("variants"))

    def get_form(
        self, request: HttpRequest, obj: Experiment | None = None, change: bool = False, **kwargs
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if obj is not None:
            # The planner belongs to the create page; an experiment has its `<id>/plan/` page.
            for name in PLANNER_FIELDS:
                form.base_fields.pop(name, None)
        return form

    # Saving goes through `services.experiment_save`, as the API does: the same validation,
    # status rules and freezes, and one audit entry for the experiment with its inlines. The
    # form and inline formsets only collect the data; nothing is saved until save_related
    # has all of it.
    def save_model(self, request: HttpRequest, obj: Experiment, form: Any, change: bool) -> None:
        pass

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        data = experiment_admin_data(form.instance, formsets)
        current = Experiment.objects.get(pk=form.instance.pk) if change else None
        if current is not None:
            data = changed_only(data, current)
        plan = None
        if not change:
            try:
                plan = planned_from_form(form.cleaned_data, data)
            except (ValueError, ArithmeticError) as exc:
                raise ServiceError(f"The sample-size planner cannot plan this: {exc}") from exc
            if plan is not None:
                data["planned_sample_size"] = plan.total_units
        saved = services.experiment_save(data=data, experiment=current)
        form.instance.pk = saved.pk
        form.instance._state.adding = False
        if plan is not None:
            days = f", about {plan.days_to_max:,} days at your traffic" if plan.days_to_max else ""
            self.message_user(
                request,
                f"Planned sample size set to {plan.total_units:,} units{days}.",
                messages.INFO,
            )

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceError as exc:
            # The service refused (its transaction, the admin's, is rolled back): say why.
            self.message_user(request, f"Not saved: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> list:
        # The inline formsets were not saved by the admin (the service wrote them), so only
        # the form's own fields go into Django's LogEntry; the audit log has the full diff.
        return super().construct_change_message(request, form, [], add)

    def delete_model(self, request: HttpRequest, obj: Experiment) -> None:
        before = services.experiment_state(obj.pk)
        super().delete_model(request, obj)
        services.object_delete_audit(object_type="experiment", object_key=obj.key, before=before)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        for experiment in queryset:
            self.delete_model(request, experiment)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        """The audit log of this experiment (not Django's LogEntry, which misses the API,
        commands and the system)."""
        experiment = get_object_or_404(Experiment, pk=object_id)
        if not self.has_view_or_change_permission(request, experiment):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": f"History: {experiment.key}",
            "opts": self.model._meta,
            "original": experiment,
            "entries": audit_list(experiment=experiment.key, limit=500),
        }
        return TemplateResponse(
            request, "admin/experiments/experiment/audit_history.html", context
        )

    @admin.display(description="Variants", ordering="variant_total")
    def variant_count(self, obj: WithAnnotations[Experiment, _VariantTotal]) -> int:
        return obj.variant_total

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> tuple:
        fields: tuple[str, ...] = tuple(self.readonly_fields)
        if obj is not None and obj.status in services.CLOSED_STATUSES:
            return fields + tuple(ExperimentForm.Meta.fields)
        if obj is not None and obj.status != Status.DRAFT:
            fields += ("key",)
        if obj is not None and obj.status in LIVE_STATUSES:
            fields += ("seed", "hash_version", "layer", "layer_start", "layer_end")
            fields += ("planned_sample_size", "model_guardrails", *FROZEN_ANALYSIS_FIELDS)
            fields += ("analysis_frozen",)
        return fields

    def get_fieldsets(self, request: HttpRequest, obj: Experiment | None = None) -> Any:
        if obj is None:
            planner = (
                "Plan the sample size",
                {
                    "fields": PLANNER_FIELDS,
                    "description": "Leave the planned sample size empty and give a baseline: "
                    "saving fills it with the units needed to detect the effect (80 % power, "
                    "the analysis settings above, the variants' weights).",
                },
            )
            return (*self.fieldsets, planner)
        if obj.status not in LIVE_STATUSES:
            return self.fieldsets
        analysis = ("analysis_frozen", "planned_sample_size", "model_guardrails", *ANALYSIS_FIELDS)
        return (*self.fieldsets[:3], ("Analysis", {"fields": analysis}))

    @admin.display(description="Why read-only")
    def analysis_frozen(self, obj: Experiment) -> str:
        return (
            f"Analysis settings are {FROZEN_REASON}, so nobody can pick a method, a level or "
            "a plan after seeing the data."
        )

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<int:object_id>/move/<str:move>/",
                self.admin_site.admin_view(self.move_view),
                name="experiments_experiment_move",
            ),
            path(
                "<int:object_id>/rollback/<str:variant>/",
                self.admin_site.admin_view(self.rollback_view),
                name="experiments_experiment_rollback",
            ),
        ]
        for provider in self.url_providers:
            custom += provider(self)
        return custom + super().get_urls()

    def page_view(self, function: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        """A staff-only admin page that receives this admin: `function(request, admin, **kw)`."""
        return self.admin_site.admin_view(lambda request, **kw: function(request, self, **kw))

    def move_view(self, request: HttpRequest, object_id: int, move: str) -> HttpResponse:
        """Start, pause, stop, ship or archive: GET shows what will happen to traffic and asks
        to confirm; POST (the confirmation's button) moves through the services."""
        experiment = get_object_or_404(Experiment, pk=object_id)
        change_url = reverse("admin:experiments_experiment_change", args=[object_id])
        variant = request.POST.get("variant", "") or request.GET.get("variant", "")
        if request.method != "POST":
            if not self.has_change_permission(request, experiment):
                raise PermissionDenied
            shown = "resume" if move == "start" and experiment.status == Status.PAUSED else move
            if shown not in MOVES or (move == "ship" and not variant):
                return HttpResponseRedirect(change_url)
            return self._confirm_page(request, experiment, shown, variant, move=move)
        if not self.has_change_permission(request, experiment):
            raise PermissionDenied  # a Viewer: a plain 403, never a silent redirect
        self._apply_move(request, experiment, move, variant)
        return HttpResponseRedirect(change_url)

    def rollback_view(self, request: HttpRequest, object_id: int, variant: str) -> HttpResponse:
        """The "Roll back" button of one variant: GET asks to confirm (with the reason), POST
        (with a reason) rolls back through the API's service."""
        experiment = get_object_or_404(Experiment, pk=object_id)
        change_url = reverse("admin:experiments_experiment_change", args=[object_id])
        if not self.has_change_permission(request, experiment):
            raise PermissionDenied
        if request.method != "POST":
            if not experiment.variants.filter(key=variant, is_control=False).exists():
                return HttpResponseRedirect(change_url)
            return self._confirm_page(
                request,
                experiment,
                "rollback",
                variant,
                reason=request.GET.get("reason", ""),
                action=reverse("admin:experiments_experiment_rollback", args=[object_id, variant]),
            )
        try:
            services.variant_rollback(
                experiment=experiment,
                variant_key=variant,
                reason=request.POST.get("reason", ""),
            )
        except ServiceError as exc:
            self.message_user(request, f"{experiment.name}: {exc.message}", messages.ERROR)
        else:
            text = move_text("rollback", name=experiment.name, variant=variant)
            self.message_user(request, text["done"], messages.SUCCESS)
        return HttpResponseRedirect(change_url)

    def _confirm_page(
        self,
        request: HttpRequest,
        experiment: Experiment,
        shown: str,
        variant: str,
        *,
        move: str = "",
        reason: str = "",
        action: str = "",
    ) -> HttpResponse:
        text = move_text(shown, name=experiment.name, variant=variant)
        context = {
            **self.admin_site.each_context(request),
            "title": text["title"],
            "opts": self.model._meta,
            "original": experiment,
            "text": text,
            "move": shown,
            "variant": variant,
            "reason": reason,
            "steps": lifecycle_steps(experiment),
            "action": action
            or reverse("admin:experiments_experiment_move", args=[experiment.pk, move]),
            "change_url": reverse("admin:experiments_experiment_change", args=[experiment.pk]),
        }
        return TemplateResponse(request, "admin/experiments/experiment/confirm_move.html", context)

    def _apply_move(
        self, request: HttpRequest, experiment: Experiment, move: str, variant: str = ""
    ) -> None:
        resuming = experiment.status == Status.PAUSED
        try:
            if move == "start":
                services.experiment_start(experiment=experiment)
            elif move == "pause":
                services.experiment_pause(experiment=experiment)
            elif move in ("stop", "ship"):
                services.experiment_stop(experiment=experiment, shipped_variant=variant)
            elif move == "archive":
                services.experiment_archive(experiment=experiment)
            else:
                raise ServiceError(f"Unknown action '{move}'.")
        except ServiceError as exc:
            self.message_user(request, f"{experiment.name}: {exc.message}", messages.ERROR)
        else:
            shown = "resume" if move == "start" and resuming else move
            shown = "ship" if variant and move in ("stop", "ship") else shown
            shown = "stop" if shown == "ship" and not variant else shown
            text = move_text(shown, name=experiment.name, variant=variant)
            self.message_user(request, text["done"], messages.SUCCESS)

    @admin.action(description="Start or resume selected experiments")
    def start_selected(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        for experiment in queryset:
            self._apply_move(request, experiment, "start")

    @admin.action(description="Pause selected experiments")
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        for experiment in queryset:
            self._apply_move(request, experiment, "pause")

    @admin.action(description="Stop selected experiments (ship nothing)")
    def stop_selected(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        for experiment in queryset:
            self._apply_move(request, experiment, "stop")

    @admin.action(description="Archive selected stopped experiments (no longer served)")
    def archive_selected(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        for experiment in queryset:
            self._apply_move(request, experiment, "archive")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        extra_context = extra_context or {}
        experiment = Experiment.objects.filter(pk=object_id).first()
        if experiment is not None and request.method == "GET":
            reason = FROZEN_REASONS.get(experiment.status)
            if reason and experiment.status == Status.STOPPED and experiment.shipped_variant:
                reason = (
                    f"Shipped: every unit gets {experiment.shipped_variant} until the experiment "
                    "is archived. " + reason
                )
            if reason:
                self.message_user(request, reason, messages.INFO)
        if experiment is not None:
            extra_context.update(self._preview_context(request, experiment))
            extra_context["moves"] = [
                (move, label)
                for target, move, label in (
                    (
                        Status.RUNNING,
                        "start",
                        "Resume" if experiment.status == Status.PAUSED else "Start",
                    ),
                    (Status.PAUSED, "pause", "Pause"),
                    (Status.STOPPED, "stop", "Stop"),
                    (Status.ARCHIVED, "archive", "Archive"),
                )
                if target in services.ALLOWED_MOVES[experiment.status]
            ]
            extra_context["variant_keys"] = list(experiment.variants.values_list("key", flat=True))
            extra_context["rollback_variants"] = [
                v for v in experiment.variants.all() if not v.is_control
            ]
            extra_context["can_roll_back"] = experiment.status in services.ROLLBACK_STATUSES
            extra_context["steps"] = lifecycle_steps(experiment)
            if experiment.status in services.CLOSED_STATUSES:
                # Every field is read-only: nothing to save, and a stopped experiment's history
                # is kept (archive it instead of deleting it).
                extra_context.update(
                    show_save=False,
                    show_save_and_continue=False,
                    show_save_and_add_another=False,
                    show_delete=False,
                )
        return super().change_view(request, object_id, form_url, extra_context)

    def _preview_context(self, request: HttpRequest, experiment: Experiment) -> dict:
        if "preview_unit_id" not in request.GET:
            return {"preview_form": PreviewForm()}
        form = PreviewForm(request.GET)
        context: dict[str, Any] = {"preview_form": form}
        if form.is_valid():
            try:
                config = experiment_config_build(experiment)
                answer = assign(
                    config,
                    form.cleaned_data["preview_unit_id"],
                    form.cleaned_data["preview_attributes"],
                )
                context["preview"] = answer
                context["preview_reason"] = assignment_reason_text(answer.reason)
                # The payload as an app receives it: JSON, not Python's repr of a dict.
                context["preview_payload"] = json.dumps(answer.payload, indent=2, sort_keys=True)
            except Exception as exc:  # an incomplete draft cannot be evaluated yet
                context["preview_error"] = f"Cannot evaluate this configuration yet: {exc}"
        return context


class ServiceSavedAdmin(RoleCheckedActionsMixin, admin.ModelAdmin):
    """Saves and deletes through the services, which validate and write the audit log."""

    audit_type = ""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple:
        # The key names the object in experiments, configs and the audit log: fixed once made.
        return ("key",) if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = {f: form.cleaned_data[f] for f in form.changed_data if f in form.cleaned_data}
        existing = type(obj).objects.get(pk=obj.pk) if change else None
        saved = self.service_save(data=data if change else form.cleaned_data, obj=existing)
        obj.pk = saved.pk
        obj._state.adding = False

    def service_save(self, *, data: dict, obj: Any) -> Any:
        raise NotImplementedError

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        before = self.audit_state(obj)
        super().delete_model(request, obj)
        services.object_delete_audit(
            object_type=self.audit_type, object_key=obj.key, before=before
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def audit_state(self, obj: Any) -> dict:
        raise NotImplementedError


@admin.register(Metric)
class MetricAdmin(ServiceSavedAdmin):
    list_display = ("key", "name", "event", "aggregation", "direction", "cuped_lookback_days")
    list_filter = ("aggregation", "direction")
    search_fields = ("key", "name", "event", "denominator_event")
    audit_type = "metric"

    def service_save(self, *, data: dict, obj: Metric | None) -> Metric:
        return services.metric_save(data=data, metric=obj)

    def audit_state(self, obj: Metric) -> dict:
        return metric_json(obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Metric | None = None) -> tuple:
        if obj is not None and services.started_users(obj):
            return (*FROZEN_METRIC_FIELDS, "frozen_because")
        return ()

    @admin.display(description="Why read-only")
    def frozen_because(self, obj: Metric) -> str:
        return f"The definition is {FROZEN_REASON}: {', '.join(services.started_users(obj))}."

    def get_fields(self, request: HttpRequest, obj: Metric | None = None) -> Any:
        fields = list(super().get_fields(request, obj))
        if "frozen_because" in fields:
            fields.remove("frozen_because")
            fields.insert(0, "frozen_because")
        return fields

    def save_model(self, request: HttpRequest, obj: Metric, form: Any, change: bool) -> None:
        # An empty cap on a new sum/mean metric means "the default" here, as when the API is
        # not told; 100 keeps every value.
        if (
            not change
            and obj.aggregation in services.WINSORIZED_BY_DEFAULT
            and obj.winsorize_percentile is None
        ):
            obj.winsorize_percentile = services.DEFAULT_WINSORIZE_PERCENTILE
        super().save_model(request, obj, form, change)


@admin.register(Layer)
class LayerAdmin(ServiceSavedAdmin):
    list_display = ("key", "name", "experiment_count")
    search_fields = ("key", "name")
    audit_type = "layer"

    def service_save(self, *, data: dict, obj: Layer | None) -> Layer:
        return services.layer_save(data=data, layer=obj)

    def audit_state(self, obj: Layer) -> dict:
        return services.layer_json(obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Layer]:
        return super().get_queryset(request).annotate(experiment_total=Count("experiments"))

    @admin.display(description="Experiments", ordering="experiment_total")
    def experiment_count(self, obj: WithAnnotations[Layer, _ExperimentTotal]) -> int:
        return obj.experiment_total


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiKeyScope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiKey
        fields = ("name", "scopes", "rate_limit", "is_active")


@admin.register(ApiKey)
class ApiKeyAdmin(RoleCheckedActionsMixin, admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "scopes", "rate_limit", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at")

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            data = {f: form.cleaned_data[f] for f in form.changed_data}
            services.api_key_update(api_key=ApiKey.objects.get(pk=obj.pk), data=data)
            return
        # New keys go through the service so the secret is generated, hashed and shown once.
        created, raw_key = services.api_key_create(
            name=obj.name, scopes=list(obj.scopes), rate_limit=obj.rate_limit
        )
        obj.pk, obj.prefix, obj.hashed_key = created.pk, created.prefix, created.hashed_key
        obj._state.adding = False
        self.message_user(
            request,
            f"API key created. Copy it now, it will not be shown again: {raw_key}",
            messages.WARNING,
        )

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        before = services.api_key_json(obj)
        super().delete_model(request, obj)
        services.object_delete_audit(object_type="api_key", object_key=obj.prefix, before=before)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            self.delete_model(request, api_key)
