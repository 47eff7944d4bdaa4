"""Writing audit entries. Called by the services that change configuration."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from audit.models import AuditEntry
from core.actors import Actor, current_actor


def audit_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict:
    """{field: [before, after]} for the fields that differ; nested objects (an experiment's
    `analysis`) by dotted field, so a changed alpha reads `analysis.alpha`."""
    before, after = _flat(before or {}), _flat(after or {})
    changes = {}
    for field in [*before, *(k for k in after if k not in before)]:
        old, new = before.get(field), after.get(field)
        if old != new:
            changes[field] = [old, new]
    # JSON round trip: datetimes as ISO strings, as the API shows them.
    return json.loads(json.dumps(changes, cls=DjangoJSONEncoder))


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key == "analysis" and isinstance(value, Mapping):
            flat.update(_flat(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def audit_record(
    *,
    action: str,
    object_type: str,
    object_key: str,
    experiment_key: str = "",
    changes: Mapping[str, Any] | None = None,
    reason: str = "",
    actor: Actor | None = None,
) -> AuditEntry:
    actor = actor or current_actor()
    return AuditEntry.objects.create(
        actor_type=actor.type,
        actor_name=actor.name[:200],
        action=action,
        object_type=object_type,
        object_key=object_key,
        experiment_key=experiment_key,
        changes=dict(changes or {}),
        reason=reason,
    )
