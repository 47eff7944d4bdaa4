"""The audit log: who changed what, when, and why (docs/api.md §11). Append-only.

Entries are written by the services (audit/services.py), never edited or deleted: the model
refuses `save()` of an existing row and `delete()`, its queryset refuses `update()` and
`delete()`, the admin is read-only, and on PostgreSQL a trigger refuses UPDATE and DELETE
from any client (migration 0002).
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from core.actors import ActorType


class AppendOnlyError(Exception):
    """An attempt to change or delete an audit entry."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit entries cannot be changed.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit entries cannot be deleted.")


class AuditEntry(models.Model):
    at = models.DateTimeField(default=timezone.now)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_name = models.CharField(max_length=200)
    action = models.CharField(max_length=50)
    object_type = models.CharField(max_length=50)
    object_key = models.CharField(max_length=200)
    # The experiment the change belongs to ("" for metrics, layers, keys): `?experiment=`.
    experiment_key = models.CharField(max_length=100, blank=True, db_index=True)
    changes = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["-at", "-id"], name="audit_newest_first")]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_key}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit entries cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit entries cannot be deleted.")
