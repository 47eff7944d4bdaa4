"""The guardrail monitor and automatic rollback (docs/api.md §7, §10).

Guardrail looks by the monitor and by snapshots form one chain of state (analysis/guardrails.py):
each starts where the previous one ended, so harm is never lost nor a look folded twice.
"""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import numpy as np
import pytest
from django.core import mail
from django.utils import timezone

from analysis import look_inputs
from analysis.guardrails import guardrail_check, guardrail_checks_due
from analysis.models import GuardrailCheck, Snapshot, SnapshotComparison
from audit.models import AuditEntry
from experiments import services
from experiments.models import Experiment, Variant
from tests.analysis.snapshots.test_snapshots import post_all, simulate
from tests.factories import MetricFactory, make_experiment

pytestmark = pytest.mark.django_db


def seed(api, key: str = "model", *, latency_gap: float = 30.0, **analysis) -> dict:
    """A running experiment with a primary metric and a latency guardrail, and its traffic."""
    MetricFactory(
        key="purchase", event="purchase", aggregation="conversion", cuped_lookback_days=0
    )
    MetricFactory(
        key="latency",
        name="Model latency",
        event="latency_ms",
        aggregation="mean",
        direction="decrease",
        cuped_lookback_days=0,
    )
    make_experiment(
        key,
        owner="ml-team@example.com",
        metrics=[
            {"metric": "purchase", "role": "primary"},
            {"metric": "latency", "role": "guardrail"},
        ],
        analysis={"method": "sequential", "cuped": False, **analysis},
    )
    data = simulate(
        np.random.default_rng(7),
        2000,
        ["control", "treatment"],
        [0.5, 0.5],
        {"control": 0.10, "treatment": 0.10},
        {"control": 30.0, "treatment": 30.0},
        {"control": 100.0, "treatment": 100.0 + latency_gap},
    )
    events = [dict(e, experiment=key) if e["type"] == "exposure" else e for e in data["events"]]
    post_all(api, events)
    return data


def analyze(api, capture, key: str = "model") -> None:
    with capture(execute=True):
        assert api.post(f"/api/v1/experiments/{key}/analyze").status_code == 202


def monitor(capture, key: str = "model") -> GuardrailCheck | None:
    with capture(execute=True):
        return guardrail_check(experiment_id=Experiment.objects.get(key=key).pk)


def test_monitor__check__computes_only_guardrail_metrics_and_no_snapshot(
    api, django_capture_on_commit_callbacks
) -> None:
    # Given a running experiment with a primary metric and a guardrail
    seed(api, latency_gap=0.0)
    # When the monitor checks it
    with mock.patch.object(
        look_inputs,
        "metric_variant_stats",
        wraps=look_inputs.metric_variant_stats,
    ) as stats:
        check = monitor(django_capture_on_commit_callbacks)
    # Then only the guardrail's statistics were computed, and no snapshot was taken
    assert [c.kwargs["metric"].key for c in stats.call_args_list] == ["latency"]
    assert not Snapshot.objects.exists()
    assert check is not None and check.source == "monitor"
    assert list(check.decision_state) == ["latency|treatment"]
    assert check.decision_state["latency|treatment"]["looks"] == 1
    assert check.harms == [] and check.new_harms == []


def test_monitor_and_snapshots__one_chain__each_look_counted_once(
    api, django_capture_on_commit_callbacks
) -> None:
    # Given an experiment without harm
    seed(api, latency_gap=0.0)
    capture = django_capture_on_commit_callbacks
    # When a snapshot, two monitor checks and a snapshot look at it
    analyze(api, capture)
    monitor(capture)
    monitor(capture)
    analyze(api, capture)
    # Then the guardrail carried four looks, the primary metric two (snapshots only)
    latest = Snapshot.objects.order_by("-id").first()
    rows = {r.metric: r for r in SnapshotComparison.objects.filter(snapshot=latest)}
    assert rows["latency"].looks == 4
    assert rows["purchase"].looks == 2
    # And the chain has one row per look, in order, each one look more than the last
    chain = list(GuardrailCheck.objects.order_by("id"))
    assert [c.source for c in chain] == ["snapshot", "monitor", "monitor", "snapshot"]
    assert [c.decision_state["latency|treatment"]["looks"] for c in chain] == [1, 2, 3, 4]
    # And the running minimum p never goes up along the chain
    ps = [c.decision_state["latency|treatment"]["min_p"] for c in chain]
    assert ps == sorted(ps, reverse=True)


def test_monitor__harm_with_auto_rollback__rolled_back_once_by_system(
    api, django_capture_on_commit_callbacks, settings
) -> None:
    # Given a treatment 30 ms slower, auto_rollback on, no webhooks
    settings.VARIANTLAB_ALERT_WEBHOOKS = []
    seed(api, auto_rollback=True)
    capture = django_capture_on_commit_callbacks
    # When the monitor checks it twice and a snapshot follows
    first = monitor(capture)
    monitor(capture)
    analyze(api, capture)
    # Then the first check found the harm, new; the later ones carry it without news
    assert first.new_harms[0]["metric"] == "latency"
    assert first.new_harms[0]["variant"] == "treatment"
    later = GuardrailCheck.objects.exclude(pk=first.pk)
    assert all(c.harms and not c.new_harms for c in later)
    # And the treatment was rolled back once, by the system, naming the guardrail
    treatment = Variant.objects.get(key="treatment")
    assert treatment.rolled_back_reason.startswith("guardrail latency: harm detected (")
    assert "always-valid" in treatment.rolled_back_reason
    entries = AuditEntry.objects.filter(action="rollback")
    assert [(e.actor_type, e.actor_name) for e in entries] == [("system", "system")]
    # And the experiment still runs, the control untouched
    assert Experiment.objects.get(key="model").status == "running"
    assert Variant.objects.get(key="control").rolled_back_at is None


def test_monitor__harm_without_auto_rollback__alerted_once_not_rolled_back(
    api, django_capture_on_commit_callbacks
) -> None:
    seed(api)
    capture = django_capture_on_commit_callbacks
    mail.outbox.clear()
    monitor(capture)
    monitor(capture)
    # The harm e-mail went out once, to the owner; nothing was rolled back
    harm_mails = [m for m in mail.outbox if "Guardrail harm" in m.subject]
    assert len(harm_mails) == 1 and harm_mails[0].to == ["ml-team@example.com"]
    # The metric by its name, not its key (issue #15)
    assert "Guardrail Model latency: harm detected" in harm_mails[0].body
    assert Variant.objects.get(key="treatment").rolled_back_at is None


def test_monitor__stale_schedule__skipped(api, django_capture_on_commit_callbacks) -> None:
    # Given a check scheduled when the chain was empty, but a snapshot looked since
    seed(api, latency_gap=0.0)
    analyze(api, django_capture_on_commit_callbacks)
    experiment = Experiment.objects.get(key="model")
    # When the scheduled check runs
    skipped = guardrail_check(experiment_id=experiment.pk, expected_head=None)
    # Then it does nothing (a replayed or overtaken task never adds a look)
    assert skipped is None
    assert GuardrailCheck.objects.count() == 1


def test_monitor__not_running_or_no_guardrails__no_check(api) -> None:
    seed(api, latency_gap=0.0)
    services.experiment_pause(experiment=Experiment.objects.get(key="model"))
    assert guardrail_check(experiment_id=Experiment.objects.get(key="model").pk) is None
    plain = make_experiment("plain")
    assert guardrail_check(experiment_id=plain.pk) is None
    assert not GuardrailCheck.objects.exists()


def test_guardrail_checks_due__interval_per_experiment(
    api, django_capture_on_commit_callbacks
) -> None:
    # Given a running experiment with a guardrail (10-minute checks) and one without
    seed(api, latency_gap=0.0, guardrail_check_minutes=10)
    make_experiment("plain")
    experiment = Experiment.objects.get(key="model")
    capture = django_capture_on_commit_callbacks
    # When beat asks who is due: the never-checked one is checked (eager task)
    with capture(execute=True):
        assert guardrail_checks_due() == [experiment.pk]
    assert GuardrailCheck.objects.count() == 1
    # Then a minute later nobody is due
    with capture(execute=True):
        assert guardrail_checks_due() == []
    # And once 10 minutes have passed since the last look, it is due again
    GuardrailCheck.objects.update(checked_at=timezone.now() - timedelta(minutes=10, seconds=1))
    with capture(execute=True):
        assert guardrail_checks_due() == [experiment.pk]
    assert GuardrailCheck.objects.count() == 2


def test_beat_schedule__guardrail_checks_every_minute(settings) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["guardrail-checks-due"]
    assert entry["task"] == "analysis.tasks.guardrail_checks_due_task"
    assert entry["schedule"] == 60.0
