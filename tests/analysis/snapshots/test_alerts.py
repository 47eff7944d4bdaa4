"""Alerts (docs/api.md §10): webhook JSON to a local receiver, e-mail to the owner, the banner."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from unittest import mock

import numpy as np
import pytest
from celery.exceptions import Retry
from django.core import mail

from analysis.alerts import AlertDeliveryError, alert_webhook_deliver
from analysis.tasks import alert_webhook_task
from audit.models import AuditEntry
from experiments.models import Experiment
from tests.analysis.snapshots.test_snapshots import post_all, simulate
from tests.factories import MetricFactory, make_experiment, staff_client

pytestmark = pytest.mark.django_db
ALERT_FIELDS = {"type", "experiment", "variant", "metric", "message", "text", "url"}


class Receiver:
    """A webhook receiver on 127.0.0.1 that records what it gets and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        received: list[dict] = []
        self.received = received
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(
                    {
                        "content_type": self.headers["Content-Type"],
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_rollback__webhook_and_owner_email__delivered(
    api, settings, django_capture_on_commit_callbacks
) -> None:
    # Given a webhook receiver and an owner who is an address
    make_experiment("exp", owner="ranking@example.com")
    mail.outbox.clear()
    with Receiver() as receiver:
        settings.VARIANTLAB_ALERT_WEBHOOKS = [receiver.url, receiver.url + "/second"]
        # When a variant is rolled back through the API
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(
                "/api/v1/experiments/exp/variants/treatment/rollback",
                {"reason": "errors doubled"},
                format="json",
            )
        assert response.status_code == 200
    # Then each webhook got the contract's JSON, with a Slack-compatible text
    assert len(receiver.received) == 2
    delivery = receiver.received[0]
    assert delivery["content_type"] == "application/json"
    body = delivery["body"]
    assert set(body) == ALERT_FIELDS
    assert (body["type"], body["experiment"], body["variant"]) == ("rollback", "exp", "treatment")
    assert body["metric"] is None  # a manual rollback names no guardrail
    assert "errors doubled" in body["message"] and "by test" in body["message"]
    assert body["text"].startswith("*Variant rolled back: exp / treatment*")
    experiment = Experiment.objects.get(key="exp")
    assert body["url"].endswith(f"/admin/experiments/experiment/{experiment.pk}/results/")
    # And the owner got one e-mail through Django's backend
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ranking@example.com"]
    assert "Variant rolled back: exp" in mail.outbox[0].subject
    assert "errors doubled" in mail.outbox[0].body


def test_rollback__owner_not_an_address_no_webhooks__no_mail_no_error(
    api, settings, django_capture_on_commit_callbacks
) -> None:
    settings.VARIANTLAB_ALERT_WEBHOOKS = []
    make_experiment("exp", owner="search-team")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/experiments/exp/variants/treatment/rollback", {"reason": "x"}, format="json"
        )
    assert response.status_code == 200
    assert mail.outbox == []


def test_rollback__receiver_down__rollback_still_done(
    api, settings, django_capture_on_commit_callbacks
) -> None:
    # Given a webhook URL nobody listens on (a closed port on the loopback)
    with Receiver() as receiver:
        dead = receiver.url
    settings.VARIANTLAB_ALERT_WEBHOOKS = [dead]
    make_experiment("exp")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/experiments/exp/variants/treatment/rollback", {"reason": "x"}, format="json"
        )
    # Then the rollback stands; delivery failure never fails the caller
    assert response.status_code == 200
    assert Experiment.objects.get(key="exp").variants.get(key="treatment").rolled_back_at


def test_alert_webhook_deliver__5xx_retried_4xx_not() -> None:
    with Receiver(status=503) as receiver:
        with pytest.raises(AlertDeliveryError):
            alert_webhook_deliver(url=receiver.url, payload={"type": "rollback"})
        receiver.status = 400
        assert alert_webhook_deliver(url=receiver.url, payload={"type": "rollback"}) == 400
    assert len(receiver.received) == 2
    # Non-HTTP URLs are refused without opening anything
    assert alert_webhook_deliver(url="file:///etc/passwd", payload={}) == 0


def test_alert_webhook_task__transient_failure__retried_with_backoff() -> None:
    with (
        mock.patch("analysis.alerts.alert_webhook_deliver", side_effect=AlertDeliveryError("503")),
        mock.patch.object(alert_webhook_task, "retry", side_effect=Retry()) as retry,
        pytest.raises(Retry),
    ):
        alert_webhook_task.run("http://127.0.0.1:1/hook", {"type": "harm"})
    assert retry.call_args.kwargs["countdown"] == 10


def test_srm_flag__new__alert_and_audit_once(
    api, settings, django_capture_on_commit_callbacks
) -> None:
    # Given a 50/50 experiment whose exposures come 70/30
    settings.VARIANTLAB_ALERT_WEBHOOKS = []
    MetricFactory(key="buy", event="purchase", aggregation="conversion", cuped_lookback_days=0)
    make_experiment(
        "shop",
        owner="growth@example.com",
        metrics=[{"metric": "buy", "role": "primary"}],
        analysis={"cuped": False},
    )
    data = simulate(
        np.random.default_rng(3),
        2000,
        ["control", "treatment"],
        [0.7, 0.3],
        {"control": 0.1, "treatment": 0.1},
        {"control": 30.0, "treatment": 30.0},
        {"control": 100.0, "treatment": 100.0},
    )
    post_all(api, data["events"])
    mail.outbox.clear()
    # When two snapshots are computed
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert api.post("/api/v1/experiments/shop/analyze").status_code == 202
    # Then the flag raised one alert e-mail and one system audit entry
    srm_mails = [m for m in mail.outbox if "Sample ratio mismatch" in m.subject]
    assert len(srm_mails) == 1 and srm_mails[0].to == ["growth@example.com"]
    entries = AuditEntry.objects.filter(action="srm_flag", experiment_key="shop")
    assert [(e.actor_type, e.changes) for e in entries] == [
        ("system", {"srm.flagged": [False, True]})
    ]


def test_results_page__rolled_back_variant__banner_says_who_when_why(
    api, django_capture_on_commit_callbacks
) -> None:
    # Given a rollback by an API key
    experiment = make_experiment("exp")
    with django_capture_on_commit_callbacks(execute=True):
        api.post(
            "/api/v1/experiments/exp/variants/treatment/rollback",
            {"reason": "p95 latency +40 %"},
            format="json",
        )
    # When a Viewer opens the results page
    client = staff_client("Viewer", username="viewer")
    page = client.get(f"/admin/experiments/experiment/{experiment.pk}/results/")
    # Then the banner names the arm, who rolled it back, when and why
    content = page.content.decode()
    assert page.status_code == 200 and 'id="vl-rollbacks"' in content
    assert "<strong>treatment</strong> was rolled back" in content
    assert "by test" in content and "p95 latency +40 %" in content
    rolled_at = experiment.variants.get(key="treatment").rolled_back_at
    assert rolled_at.strftime("%Y-%m-%d %H:%M") in content


def test_results_page__nothing_rolled_back__no_banner(admin_client) -> None:
    experiment = make_experiment("exp")
    page = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/results/")
    assert 'id="vl-rollbacks"' not in page.content.decode()


def _exposures(prefix: str, variants: list[str], at) -> list[dict]:
    return [
        {
            "type": "exposure",
            "unit_id": f"{prefix}{i}",
            "experiment": "three",
            "variant": variant,
            "timestamp": at.isoformat(),
            "event_id": f"{prefix}{i}",
        }
        for i, variant in enumerate(variants)
    ]


@pytest.mark.parametrize(("live_split", "flagged"), [((340, 330), False), ((560, 140), True)])
def test_srm_after_rollback__live_arms_since_rollback__renormalised(
    api, settings, django_capture_on_commit_callbacks, live_split, flagged
) -> None:
    # Given a three-arm experiment with balanced exposures before a rollback of "big"
    from datetime import timedelta

    from django.utils import timezone
    from scipy import stats as scipy_stats

    settings.VARIANTLAB_ALERT_WEBHOOKS = []
    arms = [
        {"key": "control", "weight": 0.34, "is_control": True},
        {"key": "fast", "weight": 0.33},
        {"key": "big", "weight": 0.33},
    ]
    make_experiment("three", variants=arms)
    before = timezone.now() - timedelta(days=1)
    post_all(api, _exposures("a", ["control"] * 340 + ["fast"] * 330 + ["big"] * 330, before))
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/api/v1/experiments/three/variants/big/rollback", {"reason": "x"}, format="json")
    # And afterwards new units reach only the live arms (as the engine serves them)
    control, fast = live_split
    after = timezone.now() + timedelta(seconds=30)
    post_all(api, _exposures("b", ["control"] * control + ["fast"] * fast, after))
    # When a snapshot is computed
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/v1/experiments/three/analyze").status_code == 202
    srm = api.get("/api/v1/experiments/three/results").json()["srm"]
    # Then SRM counts only the live arms' units since the rollback, weights renormalised
    assert srm["observed"] == {"control": control, "fast": fast}
    assert srm["expected_weights"] == pytest.approx({"control": 0.34 / 0.67, "fast": 0.33 / 0.67})
    assert srm["flagged"] is flagged
    # (while a test over all units would flag the rollback itself)
    totals = [340 + control, 330 + fast, 330]
    expected = [w * sum(totals) for w in (0.34, 0.33, 0.33)]
    assert scipy_stats.chisquare(totals, expected).pvalue < 0.001
