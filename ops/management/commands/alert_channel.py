"""`manage.py alert_channel`: add, list and remove the channels alerts are delivered to."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator, validate_email

from experiments.models import Experiment
from ops.models import NotificationChannel


class Command(BaseCommand):
    help = (
        "Add a notification channel for alerts (a webhook, plain JSON or Slack-compatible, or e-mail addresses), "
        "for every experiment or one; --list them; --remove one by name."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", nargs="?", help="the channel's name (unique)")
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--webhook", metavar="URL", help="POST each new alert to this http(s) URL")
        target.add_argument("--email", metavar="ADDRESSES", help="comma-separated addresses (Django's mail backend)")
        parser.add_argument(
            "--format", choices=NotificationChannel.Format.values, default="json",
            help="webhook body: json (the alert, default) or slack ({\"text\": ...})",
        )  # fmt: skip
        parser.add_argument("--experiment", metavar="KEY", help="only this experiment's alerts (default: all)")
        parser.add_argument("--min-severity", choices=("warning", "critical"), default="warning")
        parser.add_argument("--remove", action="store_true", help="remove the channel NAME")
        parser.add_argument("--list", action="store_true", help="list the channels")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            for channel in NotificationChannel.objects.select_related("experiment"):
                scope = channel.experiment.key if channel.experiment else "all experiments"
                target = channel.url if channel.kind == "webhook" else ", ".join(channel.emails)
                self.stdout.write(f"{channel.name}\t{channel.kind}/{channel.format}\t{scope}\t"
                                  f"{channel.min_severity}+\t{target}")  # fmt: skip
            return
        name = options["name"]
        if not name:
            raise CommandError("Name the channel (or use --list).")
        if options["remove"]:
            deleted, _ = NotificationChannel.objects.filter(name=name).delete()
            if not deleted:
                raise CommandError(f"No channel named {name!r}.")
            self.stdout.write(f"Removed channel {name!r}.")
            return
        fields: dict[str, Any] = {"format": options["format"], "min_severity": options["min_severity"]}
        if options["webhook"]:
            try:
                URLValidator(schemes=["http", "https"])(options["webhook"])
            except ValidationError:
                raise CommandError(f"--webhook {options['webhook']!r} is not an http(s) URL.") from None
            fields.update(kind="webhook", url=options["webhook"], emails=[])
        elif options["email"]:
            addresses = [address.strip() for address in options["email"].split(",") if address.strip()]
            for address in addresses:
                try:
                    validate_email(address)
                except ValidationError:
                    raise CommandError(f"{address!r} is not an e-mail address.") from None
            fields.update(kind="email", url="", emails=addresses)
        else:
            raise CommandError("Give --webhook URL or --email ADDRESSES.")
        fields["experiment"] = None
        if options["experiment"]:
            fields["experiment"] = Experiment.objects.filter(key=options["experiment"]).first()
            if fields["experiment"] is None:
                raise CommandError(f"No experiment with key {options['experiment']!r}.")
        _, created = NotificationChannel.objects.update_or_create(name=name, defaults=fields)
        self.stdout.write(f"{'Added' if created else 'Updated'} channel {name!r}.")
