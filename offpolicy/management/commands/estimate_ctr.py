"""`manage.py estimate_ctr VARIANT --experiment KEY`: a variant's predicted online CTR from an experiment's log."""

from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from experiments.models import Experiment
from offpolicy.models import OffPolicyEstimate
from offpolicy.services.estimates import OffPolicyRefused, run_estimate
from offpolicy.tasks import queue_estimate
from recommenders.services.variants import VariantError, find_variant

FINISHED = ("succeeded", "failed")


class Command(BaseCommand):
    help = (
        "Estimate a trained variant's online CTR from an experiment's logged impressions with propensities "
        "(an experiment run with an exploration share, or an imported log): IPS, SNIPS and DR with bootstrap "
        "intervals, effective sample size and warnings. Runs on a Celery worker (training queue) and prints "
        "its progress, or in this process with --inline."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("variant", help="NAME@VERSION (or NAME for the newest version) of a trained variant")
        parser.add_argument("--experiment", required=True, help="key of the experiment whose log to use")
        parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
        parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
        parser.add_argument("--clip", type=float, default=None, help="cap on the importance weights (default none)")
        parser.add_argument("--inline", action="store_true", help="run in this process instead of a worker")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            variant = find_variant(options["variant"])
        except VariantError as error:
            raise CommandError("; ".join(error.errors.values())) from None
        experiment = Experiment.objects.filter(key=options["experiment"]).first()
        if experiment is None:
            raise CommandError(f"No experiment {options['experiment']!r}.")
        settings = {"seed": options["seed"], "n_bootstrap": options["bootstrap"], "clip": options["clip"]}
        try:
            estimate = queue_estimate(variant, experiment, settings, send=not options["inline"])
        except OffPolicyRefused as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Estimate {estimate.pk} of {variant.label} from the log of {experiment.key} queued.")
        if options["inline"]:
            run_estimate(estimate.pk)
        shown = (-1, "")
        while True:
            estimate.refresh_from_db()
            if (estimate.progress, estimate.message) != shown:
                shown = (estimate.progress, estimate.message)
                self.stdout.write(f"{estimate.progress:3d}% {estimate.status}: {estimate.message}")
            if estimate.status in FINISHED:
                break
            time.sleep(0.5)
        if estimate.status == "failed":
            raise CommandError(f"Estimate {estimate.pk} failed: {estimate.error}")
        self.stdout.write(table(estimate))


def table(estimate: OffPolicyEstimate) -> str:
    """The estimate as a plain-text table, then its warnings and method."""
    result = estimate.result
    level = f"{result['confidence']:.0%}"
    lines = [
        f"{estimate.n:,} impressions of {estimate.requests:,} requests; logged CTR {result['logged_ctr']:.4%}",
        f"{'estimator':<9} {'CTR':>9} {level + ' interval':>22} {'ESS':>10}",
    ]
    for name in ("IPS", "SNIPS", "DR"):
        row = result[name]
        lines.append(
            f"{name:<9} {row['estimate']:>9.4%} {'[' + format(row['ci_lower'], '.4%') + ', ':>12}"
            f"{format(row['ci_upper'], '.4%') + ']':>10} {row['effective_sample_size']:>10,.0f}"
        )
    lines.extend(f"warning: {warning}" for warning in estimate.warnings)
    lines.append(f"method: {estimate.method}")
    return "\n".join(lines)
