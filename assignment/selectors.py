"""Reads the configuration the hot path needs, once per config version, into plain objects."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from variantlab_client.growthbook import features_payload

from assignment.engine import ExperimentConfig, ExperimentSet
from core.config_version import VersionedCache
from experiments.models import Experiment, Status
from experiments.selectors import experiment_config_build
from experiments.validation import VariantSpec, variant_set_errors


@dataclass(frozen=True, slots=True)
class AssignmentConfig:
    """Everything /assign and /config serve, built once per config version."""

    experiments: dict[str, ExperimentConfig]
    # What /assign evaluates when no experiments are named, and what /config lists: running,
    # paused and shipped experiments (docs/api.md §13).
    served_keys: tuple[str, ...]
    config_body: bytes
    etag: str
    served: ExperimentSet
    # /features: the same experiments in GrowthBook's SDK payload format (docs/api.md §13).
    features_body: bytes = b""
    features_etag: str = ""
    # /assign's JSON for each (experiment, variant, reason) met so far: payloads are fixed within
    # one config version, so each is rendered once per version rather than on every request.
    rendered_answers: dict[tuple[str, str | None, str, bool], bytes] = field(
        default_factory=dict, compare=False
    )
    # The experiment sets of the key lists requests named, built once per config version.
    named_sets: dict[tuple[str, ...], ExperimentSet] = field(default_factory=dict, compare=False)

    def experiment_set(self, keys: tuple[str, ...]) -> ExperimentSet:
        found = self.named_sets.get(keys)
        if found is None:
            found = ExperimentSet(self.experiments[k] for k in keys)
            # Bounded: key lists come from clients, and a few distinct lists is the usual case.
            if len(self.named_sets) < NAMED_SETS_MAX:
                self.named_sets[keys] = found
        return found


NAMED_SETS_MAX = 1024


def experiment_config_json(
    config: ExperimentConfig, rolled_back_at: dict[str, str]
) -> dict[str, Any]:
    """The /config shape of one experiment: what an SDK needs to evaluate it locally.

    `ranges` are GrowthBook's explicit bucket ranges: a rolled-back variant's is empty, so an
    SDK that only reads ranges serves its units the default (control) as docs/api.md §10 wants.
    """
    return {
        "key": config.key,
        "status": config.status,
        "shipped_variant": config.shipped.key if config.shipped else None,
        "seed": config.seed,
        "hash_version": config.hash_version,
        "coverage": config.coverage,
        "variants": [
            {
                "key": v.key,
                "weight": v.weight,
                "is_control": v.is_control,
                "payload": v.payload,
                "rolled_back_at": rolled_back_at.get(v.key),
            }
            for v in config.variants
        ],
        "ranges": [list(r) for r in served_ranges(config)],
        "condition": config.condition,
        "layer": (
            {"key": config.layer[0], "start": config.layer[1], "end": config.layer[2]}
            if config.layer
            else None
        ),
        "forced_assignments": dict(config.forced),
    }


def assignment_config_load() -> AssignmentConfig:
    # Drafts are served too (as not running), so app code can ship before its experiment
    # starts; a draft whose variants are still incomplete stays "unknown" until it is fixed.
    # Archived experiments are not served at all (docs/api.md §13): a named one is "unknown".
    experiments = (
        Experiment.objects.exclude(status=Status.ARCHIVED)
        .select_related("layer")
        .prefetch_related("variants", "forced_assignments__variant")
        .order_by("key")
    )
    valid = [
        e
        for e in experiments
        if not variant_set_errors(
            [VariantSpec(v.key, v.weight, v.is_control) for v in e.variants.all()]
        )
    ]
    configs = {e.key: experiment_config_build(e) for e in valid}
    rolled_back_at = {
        e.key: {v.key: v.rolled_back_at.isoformat() for v in e.variants.all() if v.rolled_back_at}
        for e in valid
    }
    served = tuple(k for k, c in configs.items() if experiment_served(c))
    rows = tuple(experiment_config_json(configs[k], rolled_back_at[k]) for k in served)
    body = json.dumps({"experiments": rows}, cls=DjangoJSONEncoder, separators=(",", ":")).encode()
    features = json.dumps(
        features_payload(rows), cls=DjangoJSONEncoder, separators=(",", ":")
    ).encode()
    return AssignmentConfig(
        experiments=configs,
        served_keys=served,
        config_body=body,
        etag=_etag(body),
        served=ExperimentSet(configs[k] for k in served),
        features_body=features,
        features_etag=_etag(features),
    )


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def served_ranges(config: ExperimentConfig) -> list[tuple[float, float]]:
    """The bucket ranges with each rolled-back variant's emptied (start, start)."""
    return [
        (low, low) if variant.rolled_back else (low, high)
        for variant, (low, high) in zip(config.variants, config.ranges, strict=True)
    ]


def experiment_served(config: ExperimentConfig) -> bool:
    """Running, paused (control for all) or shipped: what apps must still evaluate (§13)."""
    return config.status in (Status.RUNNING, Status.PAUSED) or config.shipped is not None


assignment_config = VersionedCache(assignment_config_load)
