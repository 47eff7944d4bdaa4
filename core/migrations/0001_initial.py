"""ConfigVersion moves from experiments to core (issue #13): the table stays as it is.

State only: experiments' 0001 created the table `experiments_configversion`; this migration
records the model under core, and experiments' 0006 removes it from experiments' state.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("experiments", "0005_auto_rollback")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ConfigVersion",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("version", models.BigIntegerField(default=0)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                    ],
                    options={"db_table": "experiments_configversion"},
                ),
            ],
            database_operations=[],
        ),
    ]
