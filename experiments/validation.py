"""Rules an experiment's configuration must obey, shared by the admin and the API.

`experiments.models` calls these from `Experiment.clean()`, so this module does not import the
models at run time: it reaches the table through the instance it checks (`type(experiment)`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Q
from variantlab_client.engine import validate_condition

if TYPE_CHECKING:
    from experiments.models import Experiment

WEIGHT_TOLERANCE = 1e-6
# Statuses whose experiments hold their layer range and freeze their hashing inputs.
LIVE_STATUSES = ("running", "paused")
# Statuses whose experiments have given their layer range back.
CLOSED_STATUSES = ("stopped", "archived")


@dataclass(frozen=True, slots=True)
class VariantSpec:
    key: str
    weight: float
    is_control: bool


def variant_set_errors(variants: Sequence[VariantSpec]) -> list[str]:
    """Problems of a whole set of variants: the rules no single variant can check alone."""
    problems = []
    if len(variants) < 2:
        problems.append("An experiment needs at least two variants.")
    keys = [v.key for v in variants]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        problems.append(f"Variant keys must be unique; repeated: {', '.join(duplicates)}.")
    controls = sum(1 for v in variants if v.is_control)
    if controls != 1:
        problems.append(f"Exactly one variant must be the control (found {controls}).")
    total = sum(v.weight for v in variants)
    if variants and abs(total - 1.0) > WEIGHT_TOLERANCE:
        problems.append(f"Variant weights must sum to 1 (they sum to {total:g}).")
    return problems


def frozen_variant_errors(
    current: Iterable[VariantSpec], proposed: Iterable[VariantSpec]
) -> list[str]:
    """While an experiment runs, units must keep their variant: keys and weights are frozen."""
    before = {v.key: v.weight for v in current}
    after = {v.key: v.weight for v in proposed}
    if before.keys() != after.keys():
        return ["Variants cannot be added or removed while the experiment is running or paused."]
    changed = sorted(k for k in before if abs(before[k] - after[k]) > WEIGHT_TOLERANCE)
    if changed:
        return [
            "Weights cannot change while the experiment is running or paused "
            f"(changed: {', '.join(changed)}); stop it and start a new one."
        ]
    return []


def condition_errors(condition: object) -> list[str]:
    if not isinstance(condition, dict):
        return ["The condition must be a JSON object."]
    return validate_condition(condition)


def experiment_field_errors(experiment: Experiment) -> dict[str, list[str]]:
    """Field-level problems of one experiment row (its variants are checked as a set elsewhere)."""
    errors: dict[str, list[str]] = {}
    for problem in condition_errors(experiment.condition):
        errors.setdefault("condition", []).append(problem)
    if experiment.layer_id is not None:
        if experiment.layer_start >= experiment.layer_end:
            errors.setdefault("layer_end", []).append("The layer range end must exceed its start.")
        else:
            clash = _overlapping_layer_experiment(experiment)
            if clash is not None:
                assert experiment.layer is not None  # layer_id is set
                errors.setdefault("layer_start", []).append(
                    f"Range [{experiment.layer_start:g}, {experiment.layer_end:g}) overlaps "
                    f"experiment '{clash.key}' [{clash.layer_start:g}, {clash.layer_end:g}) "
                    f"in layer '{experiment.layer.key}'."
                )
    if experiment.pk is not None:
        errors.update(_frozen_field_errors(experiment))
    return errors


def _overlapping_layer_experiment(experiment: Experiment) -> Experiment | None:
    # A stopped (or archived) experiment gives its range back to the layer.
    return (
        type(experiment)
        .objects.filter(layer_id=experiment.layer_id)  # type: ignore[misc]
        .exclude(pk=experiment.pk)
        .exclude(status__in=CLOSED_STATUSES)
        .filter(Q(layer_start__lt=experiment.layer_end) & Q(layer_end__gt=experiment.layer_start))
        .only("key", "layer_start", "layer_end")
        .first()
    )


def _frozen_field_errors(experiment: Experiment) -> dict[str, list[str]]:
    stored: Mapping[str, object] | None = (
        type(experiment)
        .objects.filter(pk=experiment.pk)
        .values("key", "seed", "hash_version", "status", "layer_id", "layer_start", "layer_end")
        .first()
    )
    if stored is None or stored["status"] == "draft":
        return {}
    errors: dict[str, list[str]] = {}
    if stored["key"] != experiment.key:
        errors["key"] = ["The key cannot change once the experiment has started."]
    if stored["status"] not in LIVE_STATUSES:
        return errors
    frozen = {
        "seed": "The seed",
        "hash_version": "The hash version",
        "layer_id": "The layer",
        "layer_start": "The layer range",
        "layer_end": "The layer range",
    }
    for field, label in frozen.items():
        if stored[field] != getattr(experiment, field):
            name = "layer" if field == "layer_id" else field
            errors[name] = [
                f"{label} cannot change while the experiment is running or paused; "
                "changing it would move units to other variants."
            ]
    return errors
