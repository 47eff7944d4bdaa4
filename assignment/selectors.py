"""Reads the configuration the hot path needs, once per config version, into plain objects."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from django.core.serializers.json import DjangoJSONEncoder

from assignment.engine import ExperimentConfig, VariantConfig
from experiments.config_version import VersionedCache
from experiments.models import Experiment, Status
from experiments.validation import VariantSpec, variant_set_errors


@dataclass(frozen=True, slots=True)
class AssignmentConfig:
    """Everything /assign and /config serve, built once per config version."""

    experiments: dict[str, ExperimentConfig]
    running_keys: tuple[str, ...]
    config_body: bytes
    etag: str
    # /assign's JSON for each (experiment, variant, reason) met so far: payloads are fixed within
    # one config version, so each is rendered once per version rather than on every request.
    rendered_answers: dict[tuple, bytes] = field(default_factory=dict, compare=False)


def experiment_config_build(experiment: Experiment) -> ExperimentConfig:
    variants = tuple(
        VariantConfig(key=v.key, weight=v.weight, is_control=v.is_control, payload=v.payload)
        for v in experiment.variants.all()
    )
    forced = {f.unit_id: f.variant.key for f in experiment.forced_assignments.all()}
    layer = (
        (experiment.layer.key, experiment.layer_start, experiment.layer_end)
        if experiment.layer_id
        else None
    )
    return ExperimentConfig(
        key=experiment.key,
        status=experiment.status,
        seed=experiment.effective_seed,
        hash_version=experiment.hash_version,
        coverage=experiment.coverage,
        variants=variants,
        condition=experiment.condition or {},
        layer=layer,
        forced=forced,
        shipped_variant=experiment.shipped_variant or None,
    )


def experiment_config_json(config: ExperimentConfig) -> dict:
    """The /config shape of one experiment: what an SDK needs to evaluate it locally."""
    return {
        "key": config.key,
        "seed": config.seed,
        "hash_version": config.hash_version,
        "coverage": config.coverage,
        "variants": [
            {"key": v.key, "weight": v.weight, "is_control": v.is_control, "payload": v.payload}
            for v in config.variants
        ],
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
    experiments = (
        Experiment.objects.select_related("layer")
        .prefetch_related("variants", "forced_assignments__variant")
        .order_by("key")
    )
    configs = {
        e.key: experiment_config_build(e)
        for e in experiments
        if not variant_set_errors(
            [VariantSpec(v.key, v.weight, v.is_control) for v in e.variants.all()]
        )
    }
    running = tuple(k for k, c in configs.items() if c.status == Status.RUNNING)
    body = json.dumps(
        {"experiments": [experiment_config_json(configs[k]) for k in running]},
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    ).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return AssignmentConfig(configs, running, body, etag)


assignment_config = VersionedCache(assignment_config_load)
