"""`manage.py evaluate_alerts`: run the alert rules once (what the beat does every minute)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from experiments.models import Experiment
from ops.tasks import run_evaluation


class Command(BaseCommand):
    help = (
        "Evaluate the alert rules once on every running experiment (or on --experiment only), open and resolve "
        "alerts, pause experiments with auto_pause on, and queue the new alerts' deliveries. Idempotent: an alert "
        "already open is not opened or sent again."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--experiment", help="evaluate only this experiment (key), whatever its status")

    def handle(self, *args: Any, **options: Any) -> None:
        experiments = None
        if options["experiment"]:
            experiment = Experiment.objects.select_related("owner").filter(key=options["experiment"]).first()
            if experiment is None:
                raise CommandError(f"No experiment with key {options['experiment']!r}.")
            experiments = [experiment]
        report = run_evaluation(experiments)
        self.stdout.write(
            f"Opened {len(report.opened)} alert(s), resolved {len(report.resolved)}, "
            f"paused {len(report.paused)} experiment(s){': ' + ', '.join(report.paused) if report.paused else ''}."
        )
