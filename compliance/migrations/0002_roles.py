"""Create the role groups. Their permissions are (re)derived by compliance.roles after every migrate,
so models added later by other apps are covered too."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = ("operations", "approver", "compliance_officer", "auditor", "market_maker")


def create_roles(apps, schema_editor):
    from compliance.roles import sync_role_permissions

    # On the migrating connection (the owner's, when there are two roles), not "default".
    using = schema_editor.connection.alias
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=using)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name in ROLES:
        Group.objects.using(using).get_or_create(name=name)
    sync_role_permissions(group_model=Group, permission_model=Permission, using=using)


def drop_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, drop_roles)]
