"""`manage.py demo_experiment`: queue the demo experiment's creation and simulation after the demo training."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create and start the demo experiment (best sellers vs EASE vs item-kNN on the Online Retail data) and "
        "simulate two weeks of traffic through it. Queued on the training queue behind the demo variants' training, "
        "so one worker does both in order; --inline runs it here (the variants must be trained)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--inline", action="store_true", help="run in this process")

    def handle(self, *args: Any, **options: Any) -> None:
        from simulation.services.demo import run_demo_experiment
        from simulation.tasks import demo_experiment_task

        if options["inline"]:
            self.stdout.write(run_demo_experiment())
        else:
            demo_experiment_task.apply_async(queue="training")
            self.stdout.write("Demo experiment queued behind the training; its results appear when the worker is done.")
