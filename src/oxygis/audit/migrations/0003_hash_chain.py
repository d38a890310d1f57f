"""The audit events become a hash chain (C17): existing events are numbered in the order
they were written and linked, so that verification covers them too."""

from django.db import migrations, models
from django.utils import timezone


def link_existing(apps, schema_editor):
    from oxygis.audit.chain import GENESIS, link_hash

    AuditEvent = apps.get_model("audit", "AuditEvent")
    alias = schema_editor.connection.alias
    prev = GENESIS
    for seq, event in enumerate(AuditEvent.objects.using(alias).order_by("at", "id"), start=1):
        event.seq, event.prev_hash = seq, prev
        event.hash = prev = link_hash(prev, event)
        event.save(using=alias, update_fields=["seq", "prev_hash", "hash"])


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_system_written_fields"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(null=True, editable=False),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="at",
            field=models.DateTimeField(db_index=True, default=timezone.now, editable=False),
        ),
        migrations.RunPython(link_existing, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(editable=False, unique=True),
        ),
        migrations.AlterModelOptions(name="auditevent", options={"ordering": ["-seq"]}),
    ]
