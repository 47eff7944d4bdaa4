"""Bump the config version on any change the hot path reads.

A signal (not a call in each service) because the admin's inlines, `loaddata` and the shell
also change these rows, and a missed bump would leave a stale variant served indefinitely.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from experiments.config_version import config_version_bump
from experiments.models import ApiKey, Experiment, ForcedAssignment, Layer, Variant

WATCHED = (Experiment, Variant, Layer, ForcedAssignment, ApiKey)


@receiver([post_save, post_delete])
def bump_on_config_change(sender: type, **kwargs: object) -> None:
    if sender in WATCHED:
        config_version_bump()
