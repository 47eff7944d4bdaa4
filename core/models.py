"""Core's one table: the configuration version stamp's database row."""

from __future__ import annotations

from django.db import models


class ConfigVersion(models.Model):
    """One row whose number changes on every configuration change.

    Web processes compare it with the number their cache was built from. Redis holds the same
    stamp when it is configured; this row is the fallback for the embedded mode.
    """

    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # Created by experiments' first migration; moved here with the stamp (issue #13).
        db_table = "experiments_configversion"

    def __str__(self) -> str:
        return f"config version {self.version}"
