"""Reading the audit log in the API's shape (docs/api.md §11)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from audit.models import AuditEntry


def audit_list(
    *, experiment: str | None = None, since: datetime | None = None, limit: int = 100
) -> QuerySet[AuditEntry]:
    """Newest first; `experiment` narrows to one experiment's entries (its own changes)."""
    entries = AuditEntry.objects.all()
    if experiment:
        entries = entries.filter(experiment_key=experiment)
    if since is not None:
        entries = entries.filter(at__gte=since)
    return entries.order_by("-at", "-id")[:limit]


def audit_json(entry: AuditEntry) -> dict:
    return {
        "id": entry.pk,
        "at": entry.at,
        "actor": {"type": entry.actor_type, "name": entry.actor_name},
        "action": entry.action,
        "object": {"type": entry.object_type, "key": entry.object_key},
        "changes": entry.changes,
        "reason": entry.reason,
    }
