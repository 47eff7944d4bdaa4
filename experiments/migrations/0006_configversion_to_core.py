"""ConfigVersion moved to core (issue #13): removed from experiments' state, table kept."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("experiments", "0005_auto_rollback"), ("core", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ConfigVersion")],
            database_operations=[],
        ),
    ]
