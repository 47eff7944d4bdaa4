"""The /config document (docs/api.md §5, §10, §13) read into engine objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from variantlab_client.engine import ExperimentConfig, ExperimentSet, VariantConfig

NAMED_SETS_MAX = 1024
NOT_SERVED = frozenset({"archived"})


def experiment_from_json(row: Mapping[str, Any]) -> ExperimentConfig:
    """One experiment of /config. Missing v2 fields read as a v1 server would mean them."""
    layer = row.get("layer")
    return ExperimentConfig(
        key=row["key"],
        status=row.get("status", "running"),
        seed=row["seed"],
        hash_version=int(row["hash_version"]),
        coverage=float(row["coverage"]),
        variants=tuple(
            VariantConfig(
                key=v["key"],
                weight=float(v["weight"]),
                is_control=bool(v["is_control"]),
                payload=v.get("payload") or {},
                rolled_back=v.get("rolled_back_at") is not None,
            )
            for v in row["variants"]
        ),
        condition=row.get("condition") or {},
        layer=(layer["key"], float(layer["start"]), float(layer["end"])) if layer else None,
        forced=dict(row.get("forced_assignments") or {}),
        shipped_variant=row.get("shipped_variant"),
    )


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A parsed /config and its ETag; the experiment sets apps ask for are built once each."""

    experiments: dict[str, ExperimentConfig]
    etag: str | None
    served: ExperimentSet
    named_sets: dict[tuple[str, ...], ExperimentSet] = field(default_factory=dict)

    @classmethod
    def parse(cls, document: Mapping[str, Any], etag: str | None) -> LoadedConfig:
        rows: Iterable[Mapping[str, Any]] = document["experiments"]
        # An archived experiment is no longer served (docs/api.md §13): the server leaves it out
        # of /config; a row that still says so (a saved file, a proxy's cache) is ignored too.
        experiments = {
            row["key"]: experiment_from_json(row)
            for row in rows
            if row.get("status") not in NOT_SERVED
        }
        return cls(experiments, etag, ExperimentSet(experiments.values()))

    def experiment_set(self, keys: tuple[str, ...]) -> ExperimentSet:
        found = self.named_sets.get(keys)
        if found is None:
            found = ExperimentSet(self.experiments[k] for k in keys if k in self.experiments)
            if len(self.named_sets) < NAMED_SETS_MAX:  # key lists come from app code: few
                self.named_sets[keys] = found
        return found
