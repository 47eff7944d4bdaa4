"""The work waiting in the background: shown by /readyz (config/health.py) and on the admin
index (analysis/templatetags/variantlab_admin.py)."""

from __future__ import annotations

from analysis.services import snapshot_oldest_pending_seconds
from events.models import DeadLetter


def backlog() -> dict[str, float | int | None]:
    """The oldest queued or running snapshot's age and the dead letters not yet replayed;
    None for both when the database cannot say (a probe must not fail on it)."""
    try:
        oldest = snapshot_oldest_pending_seconds()
        dead = DeadLetter.objects.filter(replayed_at__isnull=True).count()
    except Exception:
        return {"oldest_pending_snapshot_seconds": None, "dead_letters": None}
    return {
        "oldest_pending_snapshot_seconds": None if oldest is None else round(oldest, 1),
        "dead_letters": dead,
    }
