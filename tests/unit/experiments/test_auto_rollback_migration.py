"""Migration experiments/0005: auto_rollback replaces auto_pause_on_guardrail, values kept."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("experiments", "0004_variant_rolled_back")]
AFTER = [("experiments", "0005_auto_rollback")]


@pytest.mark.django_db(transaction=True)
def test_migration_0005__auto_pause_on_guardrail__carried_into_auto_rollback() -> None:
    executor = MigrationExecutor(connection)
    # Given experiments saved under 0004, one asking for the automatic action on harm
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("experiments", "Experiment")
    old.objects.create(key="acts", name="acts", auto_pause_on_guardrail=True)
    old.objects.create(key="waits", name="waits", auto_pause_on_guardrail=False)
    try:
        # When 0005 runs
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps.get_model("experiments", "Experiment")
        # Then the flag moved to auto_rollback, and checks default to every 5 minutes
        flags = dict(new.objects.values_list("key", "auto_rollback"))
        assert flags == {"acts": True, "waits": False}
        assert set(new.objects.values_list("guardrail_check_minutes", flat=True)) == {5}
        assert "auto_pause_on_guardrail" not in {f.name for f in new._meta.get_fields()}
    finally:
        # Back to the latest state for the tests that follow
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
