"""`manage.py import_events PATH --experiment KEY`: load a traffic log of an experiment run elsewhere."""

from __future__ import annotations

import sys
from argparse import ArgumentParser, RawDescriptionHelpFormatter
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string
from tqdm import tqdm

from analysis.services.external_import import (
    OPEN_BANDIT_CAMPAIGNS,
    ImportRefused,
    LogRow,
    import_traffic,
    read_open_bandit,
    read_traffic_csv,
)
from analysis.services.rollups import fold, recompute
from experiments.models import Experiment

EPILOG = """formats:
  csv          PATH is a CSV with a header; columns timestamp, user, arm, event_type (required) and
               item, position, propensity, revenue (optional). event_type is impression, click,
               add_to_cart or purchase; timestamp is ISO 8601 (UTC when no offset) or epoch seconds.
  open-bandit  PATH is the Open Bandit Dataset folder holding {random,bts}/{men,women}/{men,women}.csv;
               --campaign picks men or women. Both policies become arms: random (control) and bts.
               The data has no user ids: each logged row is one impression to one randomised unit,
               whose id is POLICY-ROWINDEX; a row with click=1 also gives a click. So users equal
               impressions and CTR = clicks / impressions. Item, position and propensity are kept.

The experiment is created as an imported one (arms from the data, no variants, status stopped,
started/stopped at the first/last timestamp) unless it exists; an existing imported experiment
takes more data. Each user's first event makes their exposure; a user in two arms is refused.
Event ids derive from the experiment and each line's content, so importing a file twice stores
nothing twice. Any bad line refuses the whole import with its file, line number and reason.
Afterwards the experiment's rollups are folded, so its results are ready.

examples:
  manage.py import_events traffic.csv --experiment homepage-2026 --owner alice --control baseline
  manage.py import_events ../shared/data/open-bandit-dataset --format open-bandit --campaign men \\
      --experiment obd-men --owner alice
"""


class Command(BaseCommand):
    help = "Import the traffic log of an experiment run elsewhere (all or nothing) and fold its rollups."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        parser.epilog = EPILOG
        return parser

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", type=Path, help="the CSV file (csv) or the data set folder (open-bandit)")
        parser.add_argument("--experiment", required=True, help="key of the imported experiment (created if new)")
        parser.add_argument("--format", choices=("csv", "open-bandit"), default="csv", help="file layout (default csv)")
        parser.add_argument("--campaign", choices=OPEN_BANDIT_CAMPAIGNS, help="open-bandit: which campaign")
        parser.add_argument("--control", help="the control arm when creating (default: the first arm seen)")
        parser.add_argument("--owner", help="username owning the experiment (required to create one)")
        parser.add_argument("--name", help="display name when creating (default: the key)")
        parser.add_argument(
            "--primary-metric", choices=Experiment.Metric.values, default=Experiment.Metric.CTR,
            help="primary metric when creating (default ctr)",
        )  # fmt: skip
        parser.add_argument(
            "--analysis-method", choices=Experiment.AnalysisMethod.values,
            default=Experiment.AnalysisMethod.FIXED_HORIZON,
            help="the test behind the verdict when creating: fixed_horizon (default: the log is complete and read "
            "once) or sequential (for a log imported day by day and looked at as it grows)",
        )  # fmt: skip
        parser.add_argument("--no-fold", action="store_true", help="leave folding to the periodic task")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = None
        if options["owner"]:
            owner = User.objects.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"No user named {options['owner']!r}.")
        path: Path = options["path"]
        if options["format"] == "open-bandit":
            if not options["campaign"]:
                raise CommandError("--format open-bandit needs --campaign men or --campaign women.")
            if options["control"] not in (None, "random"):
                raise CommandError("In the Open Bandit Dataset the control is the random policy (arm 'random').")
            reader = read_open_bandit(path, options["campaign"])
            control = "random"
        else:
            reader = read_traffic_csv(path)
            control = options["control"]
        interactive = sys.stderr.isatty()
        try:
            rows: list[LogRow] = list(tqdm(reader, desc="reading", unit=" rows", disable=not interactive))
            self.stdout.write(f"Read {len(rows):,} events from {path}.")
            with tqdm(total=len(rows), desc="storing", unit=" events", disable=not interactive) as bar:
                result = import_traffic(
                    rows, experiment_key=options["experiment"], owner=owner, control=control,
                    name=options["name"], primary_metric=options["primary_metric"],
                    analysis_method=options["analysis_method"], progress=bar.update,
                )  # fmt: skip
        except ImportRefused as error:
            raise CommandError(f"Nothing was imported. {error}") from None
        verb = "Created" if result.created else "Added to"
        self.stdout.write(self.style.SUCCESS(
            f"{verb} imported experiment {result.experiment_key!r} (arms {', '.join(result.arms)}): "
            f"{result.stored:,} events stored, {result.duplicates:,} already there, {result.new_users:,} new users."
        ))  # fmt: skip
        if options["no_fold"]:
            self._imported(result.experiment_id)
            return
        # Imports hold the fold lock while writing, so no lag is needed for this experiment's own rows;
        # an earlier first event of a known user moves a folded exposure's day: then fold from scratch.
        refold = recompute if result.exposures_moved else fold
        folded = refold(result.experiment_id, lag=timedelta(0))
        self.stdout.write(f"Folded {folded.events:,} events into the rollups (watermark {folded.event_watermark}).")
        self._imported(result.experiment_id)

    def _imported(self, experiment_id: int) -> None:
        """Run settings.EVENTS_IMPORTED_HOOKS (the alert rules, from ops: a layer above this command)."""
        for hook in settings.EVENTS_IMPORTED_HOOKS:
            import_string(hook)(experiment_id)
