"""What /config and /features send, as serializers, so the OpenAPI schema describes them.

The views answer with bytes rendered once per config version (assignment/selectors.py); these
classes only describe those bodies (docs/api.md §5, §13).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class ConfigVariantOutput(serializers.Serializer[Any]):
    key = serializers.CharField()
    weight = serializers.FloatField()
    is_control = serializers.BooleanField()
    payload = serializers.DictField(help_text="What the app receives for this variant.")
    rolled_back_at = serializers.DateTimeField(allow_null=True)


class ConfigLayerOutput(serializers.Serializer[Any]):
    key = serializers.CharField()
    start = serializers.FloatField()
    end = serializers.FloatField()


class ConfigExperimentOutput(serializers.Serializer[Any]):
    """One experiment with everything local evaluation needs (docs/api.md §2)."""

    key = serializers.CharField()
    status = serializers.ChoiceField(choices=["draft", "running", "paused", "stopped"])
    shipped_variant = serializers.CharField(allow_null=True)
    seed = serializers.CharField()
    hash_version = serializers.IntegerField()
    coverage = serializers.FloatField()
    variants = ConfigVariantOutput(many=True)
    ranges = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="Each variant's bucket range as served; a rolled-back variant's is empty.",
    )
    condition = serializers.DictField(help_text="GrowthBook's condition language; {} is true.")
    layer = ConfigLayerOutput(allow_null=True)
    forced_assignments = serializers.DictField(
        child=serializers.CharField(), help_text="Unit id → variant key (QA overrides)."
    )


class ConfigOutput(serializers.Serializer[Any]):
    experiments = ConfigExperimentOutput(many=True)


class FeatureOutput(serializers.Serializer[Any]):
    """One experiment as a GrowthBook feature: force rules for QA, then the experiment rule."""

    defaultValue = serializers.DictField(help_text="The control's payload.")
    rules = serializers.ListField(child=serializers.DictField())


class FeaturesOutput(serializers.Serializer[Any]):
    features = serializers.DictField(
        child=FeatureOutput(), help_text="Experiment key → GrowthBook feature."
    )
