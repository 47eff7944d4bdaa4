"""Variantlab's served experiments as GrowthBook's SDK payload (docs/api.md §13).

One feature per experiment, keyed by the experiment key, whose value is the variant payload:
QA overrides become force rules on ``id``, a shipped experiment a force rule to the shipped
payload, a paused one serves its default (the control payload) to everyone, and a running one
an experiment rule with the same seed, hash version, weights, coverage, condition and
namespace, so any GrowthBook SDK assigns exactly as Variantlab does. A rolled-back variant
keeps its weight but gets an empty explicit range: its units fall outside every range and get
the default, i.e. control, while no other unit moves (§10).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def features_payload(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """GrowthBook's ``{"features": {...}}`` from /config experiment rows."""
    return {
        "features": {row["key"]: _feature(row) for row in rows if row.get("status") != "archived"}
    }


def _feature(row: Mapping[str, Any]) -> dict[str, Any]:
    variants = row["variants"]
    control = next((v for v in variants if v["is_control"]), variants[0])
    by_key = {v["key"]: v for v in variants}
    shipped = by_key.get(row.get("shipped_variant") or "")
    rules: list[dict[str, Any]] = []
    if row.get("status", "running") == "running":
        for unit_id, key in sorted((row.get("forced_assignments") or {}).items()):
            if key in by_key:
                rules.append({"condition": {"id": unit_id}, "force": by_key[key]["payload"]})
        rules.append(_experiment_rule(row))
    elif row.get("status") == "stopped" and shipped is not None:
        rules.append({"force": shipped["payload"]})
    return {"defaultValue": control["payload"], "rules": rules}


def _experiment_rule(row: Mapping[str, Any]) -> dict[str, Any]:
    variants = row["variants"]
    rule: dict[str, Any] = {
        "key": row["key"],
        "variations": [v["payload"] for v in variants],
        "weights": [v["weight"] for v in variants],
        "coverage": row["coverage"],
        "seed": row["seed"],
        "hashVersion": row["hash_version"],
        "hashAttribute": "id",
        "meta": [{"key": v["key"], "name": v.get("name") or v["key"]} for v in variants],
    }
    if row.get("condition"):
        rule["condition"] = row["condition"]
    layer = row.get("layer")
    if layer:
        rule["namespace"] = [layer["key"], layer["start"], layer["end"]]
    if any(v.get("rolled_back_at") for v in variants) and row.get("ranges"):
        rule["ranges"] = row["ranges"]
    return rule
