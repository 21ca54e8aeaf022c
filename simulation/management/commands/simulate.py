"""`manage.py simulate EXPERIMENT_KEY`: simulated shoppers through a running experiment, on a worker."""

from __future__ import annotations

import sys
import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from engine.simulation.config import ARRIVALS
from experiments.models import Experiment
from simulation.models import SimulationRun
from simulation.services.runs import SimulationRefused, run_simulation
from simulation.tasks import queue_simulation


class Command(BaseCommand):
    help = (
        "Simulate traffic for a running experiment: the arms' data set's real shoppers arrive over simulated days, "
        "are assigned by the experiment's bucketing, get lists from the arms' trained models, and click, add to cart "
        "and buy according to what they really bought after the data set's hold-out time. Events are stored like "
        "live ones, marked with the run (delete them with --delete RUN_ID). Runs on a Celery worker with a "
        "progress bar; Ctrl-C leaves it running."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("experiment", help="the experiment's key")
        parser.add_argument("--users", type=float, default=1000, help="mean simulated sessions per day (default 1000)")
        parser.add_argument("--days", type=int, default=14, help="simulated days (default 14)")
        parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same events (default 0)")
        parser.add_argument(
            "--effect",
            type=float,
            default=0.0,
            help="inject a known relative lift of the click probability, e.g. 0.1 (default 0)",
        )
        parser.add_argument("--effect-arm", type=int, default=1, help="arm position receiving --effect (default 1)")
        parser.add_argument("--search-share", type=float, default=0.2, help="share of sessions with a query")
        parser.add_argument(
            "--arrivals",
            choices=ARRIVALS,
            default=ARRIVALS[0],
            help="when shoppers first visit. at-start (default): every shopper may come from day 0, so most first "
            "visits fall in the first days; uniform: first visits spread uniformly over the run; first-purchase: at "
            "each shopper's real first purchase after the hold-out time, rescaled onto the run. With uniform and "
            "first-purchase new shoppers keep arriving until the end (what an adaptive design such as a bandit "
            "needs, since a shopper keeps their first arm) and daily traffic grows, the total staying about "
            "--users x --days",
        )
        parser.add_argument(
            "--population-scale",
            type=int,
            default=1,
            metavar="S",
            help="simulate a shop S times as large (1-20, default 1): each real shopper stands for S shoppers with "
            "the same tastes but their own arm, visits and clicks. The data set's shoppers limit what an experiment "
            "can learn (with 1,893 Online Retail shoppers a +10 %% CTR lift is about 1.5 standard errors), so use "
            "S > 1 to see small effects, with --users scaled by S to keep the visits per shopper. Not with --http",
        )
        parser.add_argument("--inline", action="store_true", help="run in this process instead of a worker")
        parser.add_argument(
            "--http",
            metavar="URL",
            help="send the traffic through the HTTP API at URL (loopback only; a load test, runs in this process)",
        )
        parser.add_argument("--token", default="", help="API token (serve, ingest and simulate scopes) for --http")
        parser.add_argument("--no-wait", action="store_true", help="queue and return at once")
        parser.add_argument("--delete", type=int, metavar="RUN_ID", help="delete a run's traffic instead")
        parser.add_argument(
            "--cancel", type=int, metavar="RUN_ID", help="cancel a queued or running run (it stops before its next day)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        experiment = Experiment.objects.filter(key=options["experiment"]).first()
        if experiment is None:
            raise CommandError(f"No experiment {options['experiment']!r}.")
        if options["cancel"]:
            from simulation.services.runs import cancel_simulation

            found = SimulationRun.objects.filter(pk=options["cancel"], experiment=experiment).first()
            if found is None:
                raise CommandError(f"No simulation run {options['cancel']} of {experiment.key}.")
            try:
                found = cancel_simulation(found)
            except SimulationRefused as error:
                raise CommandError(str(error)) from None
            self.stdout.write(self.style.SUCCESS(f"Simulation run {found.pk}: {found.status}, {found.message}."))
            return
        if options["delete"]:
            from simulation.services.runs import delete_simulation

            run = SimulationRun.objects.filter(pk=options["delete"], experiment=experiment).first()
            if run is None:
                raise CommandError(f"No simulation run {options['delete']} of {experiment.key}.")
            delete_simulation(run)
            self.stdout.write(self.style.SUCCESS(f"Deleted simulation run {options['delete']} and its traffic."))
            return
        settings = {"daily_users": options["users"], "days": options["days"], "seed": options["seed"],
                    "injected_effect": options["effect"], "injected_arm": options["effect_arm"],
                    "search_share": options["search_share"]}  # fmt: skip
        if options["arrivals"] != ARRIVALS[0]:  # the default is left out, so default runs store the same config
            settings["arrivals"] = options["arrivals"]
        if options["population_scale"] != 1:
            settings["population_scale"] = options["population_scale"]
        if options["http"]:
            self._http(experiment, settings, options["http"], options["token"])
            return
        try:
            run = queue_simulation(experiment, settings, send=not options["inline"])
        except SimulationRefused as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Simulation run {run.pk} of {experiment.key} queued.")
        if options["inline"]:
            run_simulation(run.pk)
        elif options["no_wait"]:
            return
        with tqdm(total=100, unit="%", disable=not sys.stderr.isatty()) as bar:
            while True:
                run.refresh_from_db()
                bar.update(run.progress - bar.n)
                bar.set_postfix_str(run.message[:50])
                if run.status in SimulationRun.FINISHED:
                    break
                time.sleep(0.5)
        if run.status == "failed":
            raise CommandError(f"Simulation run {run.pk} failed: {run.error}\n{run.traceback}")
        self.stdout.write(self.style.SUCCESS(
            f"Simulated {run.sessions:,} sessions: {run.impressions:,} impressions, {run.clicks:,} clicks, "
            f"{run.purchases:,} purchases ({run.message}). Results: /api/v1/experiments/{experiment.key}/results/"
        ))  # fmt: skip

    def _http(self, experiment: Experiment, settings: dict[str, Any], url: str, token: str) -> None:
        from simulation.services.http_traffic import run_http_simulation

        def progress(fraction: float, message: str) -> None:
            self.stdout.write(f"{round(100 * fraction):3d}% {message}")

        try:
            result = run_http_simulation(experiment, settings, url, token, progress=progress)
        except SimulationRefused as error:
            raise CommandError(str(error)) from None
        run, rate = result.simulation, result.requests / result.seconds
        self.stdout.write(self.style.SUCCESS(
            f"Simulation run {run.pk} over HTTP: {result.requests:,} recommendation requests ({rate:,.0f}/s), "
            f"{run.impressions:,} impressions, {run.clicks:,} clicks, {result.events_sent:,} events sent in "
            f"{result.event_batches:,} batches; {run.message}."
        ))  # fmt: skip
