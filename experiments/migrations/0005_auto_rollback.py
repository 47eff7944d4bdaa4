"""docs/api.md §10: `analysis.auto_rollback` replaces `auto_pause_on_guardrail`.

An experiment that asked to act automatically on guardrail harm keeps acting automatically: the
old flag's value is carried over, then the old column goes. The API keeps the old name as an
alias (experiments/apis.py).
"""

import django.core.validators
from django.db import migrations, models


def carry_over(apps, schema_editor):
    Experiment = apps.get_model("experiments", "Experiment")
    Experiment.objects.filter(auto_pause_on_guardrail=True).update(auto_rollback=True)


def carry_back(apps, schema_editor):
    Experiment = apps.get_model("experiments", "Experiment")
    Experiment.objects.filter(auto_rollback=True).update(auto_pause_on_guardrail=True)


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0004_variant_rolled_back"),
    ]

    operations = [
        migrations.AddField(
            model_name="experiment",
            name="auto_rollback",
            field=models.BooleanField(
                default=False,
                help_text="Roll a variant back as soon as a guardrail detects harm on it.",
            ),
        ),
        migrations.AddField(
            model_name="experiment",
            name="guardrail_check_minutes",
            field=models.PositiveIntegerField(
                default=5,
                help_text="Check the guardrails (only them) every N minutes between snapshots.",
                validators=[
                    django.core.validators.MinValueValidator(1),
                    django.core.validators.MaxValueValidator(1440),
                ],
            ),
        ),
        migrations.RunPython(carry_over, carry_back),
        migrations.RemoveField(model_name="experiment", name="auto_pause_on_guardrail"),
    ]
