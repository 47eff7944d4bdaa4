"""Bump the config version on any change the hot path reads; announce rollbacks.

A signal (not a call in each service) because the admin's inlines, `loaddata` and the shell
also change these rows, and a missed bump would leave a stale variant served indefinitely.

`variant_rolled_back` is sent by `variant_rollback` inside its transaction, after the audit
entry: `analysis` (a stage above) turns it into an alert (analysis/receivers.py), so
experiments does not import the analysis app.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal, receiver

from core.config_version import config_version_bump
from experiments.models import ApiKey, Experiment, ForcedAssignment, Layer, Variant

WATCHED = (Experiment, Variant, Layer, ForcedAssignment, ApiKey)

# Arguments: experiment (Experiment), variant (key), metric (guardrail key or None), message.
variant_rolled_back = Signal()


@receiver([post_save, post_delete])
def bump_on_config_change(sender: type, **kwargs: object) -> None:
    if sender in WATCHED:
        config_version_bump()
