"""Receivers of signals sent by the stages below analysis (connected in AnalysisConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from analysis.alerts import alert_send
from experiments.models import Experiment
from experiments.signals import variant_rolled_back


@receiver(variant_rolled_back)
def rollback_alert(
    sender: type,
    *,
    experiment: Experiment,
    variant: str,
    metric: str | None,
    message: str,
    **kwargs: Any,
) -> None:
    """Every rollback, manual or automatic, alerts (docs/api.md §10)."""
    alert_send(
        kind="rollback", experiment=experiment, variant=variant, metric=metric, message=message
    )
