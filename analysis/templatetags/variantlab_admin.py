"""Template tags of the admin index: the work waiting in the background (issue #12)."""

from __future__ import annotations

from django import template

from analysis.backlog import backlog as backlog_now

register = template.Library()


@register.simple_tag
def backlog() -> dict[str, float | int | None]:
    """The oldest queued or running snapshot's age and the dead letters not yet replayed,
    as /readyz reports them."""
    return backlog_now()
