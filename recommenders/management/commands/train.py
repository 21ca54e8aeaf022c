"""`manage.py train VARIANT`: train a variant version on a Celery worker and show its progress."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from recommenders.management.commands._progress import wait_for
from recommenders.models import TrainingRun, Variant
from recommenders.services.training import run_training
from recommenders.services.variants import VariantError, find_variant
from recommenders.tasks import queue_training


class Command(BaseCommand):
    help = (
        "Train a variant (NAME for its newest version, or NAME@VERSION) on the training queue of a Celery "
        "worker, and draw its progress until it ends. The model file and its checksum are recorded. "
        "With --untrained, queue every variant version that has no training run yet."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("variant", nargs="?", help="NAME or NAME@VERSION")
        parser.add_argument("--untrained", action="store_true", help="queue all never-trained versions (no wait)")
        parser.add_argument("--no-wait", action="store_true", help="queue the training and return at once")
        parser.add_argument(
            "--inline", action="store_true", help="train in this process instead of a worker (debugging)"
        )
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default 3600)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["untrained"]:
            pending = list(Variant.objects.filter(training_runs__isnull=True).order_by("name", "version"))
            for variant in pending:
                run = queue_training(variant)
                self.stdout.write(f"Training run {run.pk} of {variant.label} ({variant.algorithm}) queued.")
            if not pending:
                self.stdout.write("Every variant has been trained or is training.")
            return
        if not options["variant"]:
            raise CommandError("Name a variant (NAME or NAME@VERSION), or pass --untrained.")
        try:
            variant = find_variant(options["variant"])
        except VariantError as error:
            raise CommandError(str(error)) from None
        run = queue_training(variant, send=not options["inline"])
        self.stdout.write(f"Training run {run.pk} of {variant.label} ({variant.algorithm}) queued.")
        if options["inline"]:
            run_training(run.pk)
        elif options["no_wait"]:
            return
        finished = wait_for(run, options["timeout"], self.stdout)
        assert isinstance(finished, TrainingRun)
        losses = finished.fit_report.get("history", {}).get("loss")
        self.stdout.write(self.style.SUCCESS(f"Trained {variant.label} in {finished.seconds or 0:.1f} s."))
        if losses:
            self.stdout.write("  loss per epoch: " + ", ".join(f"{loss:.4f}" for loss in losses))
        self.stdout.write(f"  model {finished.artifact_path} (sha256 {finished.artifact_sha256[:12]}…)")
