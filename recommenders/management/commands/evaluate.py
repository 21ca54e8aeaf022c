"""`manage.py evaluate VARIANT`: offline evaluation on a split, on a Celery worker, with progress."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from recommenders.management.commands._progress import wait_for
from recommenders.models import Evaluation
from recommenders.services.training import TrainingError, run_evaluation
from recommenders.services.variants import VariantError, find_variant
from recommenders.tasks import queue_evaluation

METRICS = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate", "coverage", "novelty", "diversity", "gini")


class Command(BaseCommand):
    help = (
        "Evaluate a variant offline: split its data set, fit on the train part, rank the test users' items "
        "(seen items removed) and print precision, recall, NDCG, MAP, MRR, hit rate, coverage, novelty, "
        "diversity and Gini at k. Results are stored and comparable across variants."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("variant", help="NAME or NAME@VERSION")
        parser.add_argument("--split", choices=Evaluation.Split.values, default="stratified",
                            help="stratified: per-user random (default); temporal: global time cut-off; "
                            "leave_last_out: each user's latest interaction")  # fmt: skip
        parser.add_argument("--ratio", type=float, default=0.75, help="train share (default 0.75)")
        parser.add_argument("--seed", type=int, default=42, help="random seed of the split (default 42)")
        parser.add_argument("--k", type=int, default=10, help="list length (default 10)")
        parser.add_argument("--no-wait", action="store_true", help="queue and return at once")
        parser.add_argument("--inline", action="store_true", help="run in this process instead of a worker")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default 3600)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            variant = find_variant(options["variant"])
        except VariantError as error:
            raise CommandError(str(error)) from None
        settings = {key: options[key] for key in ("split", "ratio", "seed", "k")}
        try:
            evaluation = queue_evaluation(variant, **settings, send=not options["inline"])
        except TrainingError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Evaluation {evaluation.pk} of {variant.label} queued ({options['split']}, k={options['k']})."
        )
        if options["inline"]:
            run_evaluation(evaluation.pk)
        elif options["no_wait"]:
            return
        finished = wait_for(evaluation, options["timeout"], self.stdout)
        assert isinstance(finished, Evaluation)
        self.stdout.write(self.style.SUCCESS(f"{variant.label} on {finished.metrics['n_users']} test users:"))
        for name in METRICS:
            value = finished.metrics.get(name)
            self.stdout.write(f"  {name:<10} {'n/a' if value is None else f'{value:.4f}'}")
        self.stdout.write(f"  train {finished.train_seconds:.2f} s, evaluate {finished.evaluate_seconds:.2f} s")
