"""`manage.py fold_rollups [--experiment KEY] [--recompute]`: fold events into rollups now."""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from analysis.services.fold_window import FOLD_LAG
from analysis.services.rollups import experiments_to_fold, fold, recompute
from experiments.models import Experiment


class Command(BaseCommand):
    help = (
        "Fold new events into the rollups the results read (the periodic task does this every 30 s). "
        "Idempotent: events are folded once whatever runs at the same time. --recompute rebuilds an "
        "experiment's rollups from all its events, e.g. after events arrived before their users' exposures."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--experiment", help="only this experiment (key); default: every experiment with new events"
        )
        parser.add_argument(
            "--recompute", action="store_true", help="delete and rebuild the rollups (needs --experiment)"
        )
        parser.add_argument(
            "--lag", type=float, default=FOLD_LAG.total_seconds(),
            help=f"leave events received in the last LAG seconds for later (default {FOLD_LAG.total_seconds():g}: "
            "a writer may still commit lower ids)",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        lag = timedelta(seconds=options["lag"])
        if options["experiment"]:
            experiment = Experiment.objects.filter(key=options["experiment"]).first()
            if experiment is None:
                raise CommandError(f"No experiment with the key {options['experiment']!r}.")
            ids = [experiment.pk]
        elif options["recompute"]:
            raise CommandError("--recompute needs --experiment KEY.")
        else:
            ids = experiments_to_fold()
        keys = dict(Experiment.objects.filter(pk__in=ids).values_list("pk", "key"))
        for experiment_id in ids:
            result = (recompute if options["recompute"] else fold)(experiment_id, lag=lag)
            self.stdout.write(
                f"{keys[experiment_id]}: {result.events:,} events ({result.unattributed:,} unattributed), "
                f"{result.exposures:,} exposures folded; watermark {result.event_watermark}"
            )
        if not ids:
            self.stdout.write("Nothing to fold.")
