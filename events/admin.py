"""Admin views of what apps sent: recent events, exposure counts, and kept failures."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from events.models import DeadLetter, Exposure, ExposureEvent, Outcome
from events.services import dead_letter_replay


class ReadOnlyAdmin(admin.ModelAdmin):
    """Events are facts: viewable, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Outcome)
class OutcomeAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "name", "unit_id", "value", "event_id")
    list_filter = ("name",)
    search_fields = ("unit_id", "event_id")
    date_hierarchy = "timestamp"
    ordering = ("-timestamp",)
    # Counting tens of millions of rows on every page load would be slow; show "more".
    show_full_result_count = False


@admin.register(ExposureEvent)
class ExposureEventAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "experiment", "variant", "unit_id", "event_id")
    list_filter = ("experiment",)
    list_select_related = ("experiment",)
    search_fields = ("unit_id", "event_id")
    ordering = ("-timestamp",)
    show_full_result_count = False


@admin.register(Exposure)
class ExposureAdmin(ReadOnlyAdmin):
    list_display = (
        "experiment",
        "variant",
        "unit_id",
        "first_exposed_at",
        "exposure_count",
        "multiple_variants",
        "mismatched_count",
    )
    list_filter = ("experiment", "variant", "multiple_variants")
    list_select_related = ("experiment",)
    search_fields = ("unit_id",)
    ordering = ("-first_exposed_at",)
    show_full_result_count = False


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "task_name", "attempts", "short_error", "replayed_at")
    readonly_fields = ("task_name", "payload", "error", "attempts", "created_at", "replayed_at")
    actions = ("replay_selected",)

    @admin.display(description="Error")
    def short_error(self, obj: DeadLetter) -> str:
        return obj.error.strip().splitlines()[-1][:120] if obj.error else ""

    @admin.action(description="Replay selected batches through the workers")
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        for dead_letter in queryset:
            dead_letter_replay(dead_letter=dead_letter)
        self.message_user(request, f"Replayed {queryset.count()} batch(es).", messages.SUCCESS)
