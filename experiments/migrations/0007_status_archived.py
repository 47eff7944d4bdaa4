"""docs/api.md §13: the `archived` status (a stopped experiment that is no longer served)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0006_configversion_to_core"),
    ]

    operations = [
        migrations.AlterField(
            model_name="experiment",
            name="status",
            field=models.CharField(
                choices=[
                    ("draft", "Draft"),
                    ("running", "Running"),
                    ("paused", "Paused"),
                    ("stopped", "Stopped"),
                    ("archived", "Archived"),
                ],
                default="draft",
                max_length=10,
            ),
        ),
    ]
