"""``{% load variantlab %}{% variant "search-ranker" as ranker %}{{ ranker.payload.model }}``."""

from __future__ import annotations

from typing import Any

from django import template

from variantlab_client.client import FALLBACK
from variantlab_client.engine import Assignment

register = template.Library()


@register.simple_tag(takes_context=True)  # type: ignore[untyped-decorator, unused-ignore]
def variant(context: Any, experiment: str) -> Assignment:
    """The request's assignment in ``experiment`` (``fallback`` without the middleware)."""
    request = context.get("request")
    variants = getattr(request, "variants", None)
    return FALLBACK if variants is None else variants[experiment]
