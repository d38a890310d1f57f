"""The four plans of the whitepaper: RTO 24 h for paid, 48 h for the others (C7);
retention 14 dailies and 52 weeklies by default (C1)."""

from django.db import migrations

PLANS = [
    ("paid", "Paid", 24),
    ("trial", "Trial", 48),
    ("education", "Education", 48),
    ("freemium", "Freemium", 48),
]


def add_plans(apps, schema_editor):
    Plan = apps.get_model("tenancy", "Plan")
    for code, name, rto in PLANS:
        Plan.objects.using(schema_editor.connection.alias).get_or_create(
            code=code, defaults={"name": name, "rto_hours": rto}
        )


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0001_initial")]
    operations = [migrations.RunPython(add_plans, migrations.RunPython.noop)]
