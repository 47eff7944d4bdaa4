"""The three roles as Django groups (issue #12): Viewer, Experimenter, Admin.

Add a staff user to one group in the admin (Users → Groups). Viewer: dashboard, results,
exports and history; Experimenter: also drafts, status moves, analyses and metrics; Admin:
everything, API keys, layers and users included. The audit log is read-only for all.
Permissions are listed here (not imported) so the migration keeps its meaning as code moves.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = [
    "experiments.view_experiment",
    "experiments.view_variant",
    "experiments.view_experimentmetric",
    "experiments.view_forcedassignment",
    "experiments.view_metric",
    "experiments.view_layer",
    "audit.view_auditentry",
]
EXPERIMENT = [
    *VIEW,
    "experiments.add_experiment",
    "experiments.change_experiment",
    *(
        f"experiments.{verb}_{model}"
        for model in ("variant", "experimentmetric", "forcedassignment")
        for verb in ("add", "change", "delete")
    ),
    "experiments.add_metric",
    "experiments.change_metric",
    "events.view_exposure",
    "events.view_exposureevent",
    "events.view_outcome",
    "events.view_deadletter",
]
ADMIN_APPS = ("experiments", "events", "analysis", "audit", "auth")
ROLES = {"Viewer": VIEW, "Experimenter": EXPERIMENT}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def permissions(names):
        found = []
        for name in names:
            app_label, codename = name.split(".")
            found.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return found

    for name, names in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions(names))
    admin, _ = Group.objects.get_or_create(name="Admin")
    admin.permissions.set(Permission.objects.filter(content_type__app_label__in=ADMIN_APPS))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["Viewer", "Experimenter", "Admin"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_append_only_trigger"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("experiments", "0001_initial"),
        ("events", "0001_initial"),
        ("analysis", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
