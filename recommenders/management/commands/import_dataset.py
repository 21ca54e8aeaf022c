"""`manage.py import_dataset FORMAT PATH --name NAME`: load a data set, all or nothing."""

from __future__ import annotations

import sys
import time
from argparse import ArgumentParser, RawDescriptionHelpFormatter
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_slug
from tqdm import tqdm

from recommenders.importers.generic_csv import (
    INTERACTION_KEYS,
    ITEM_KEYS,
    CsvOptions,
    MappingError,
    parse_generic_csv,
    parse_mapping,
)
from recommenders.importers.movielens import parse_movielens
from recommenders.importers.online_retail import parse_online_retail
from recommenders.importers.parsed import ImportFailed, ParsedDataset, ProgressCallback
from recommenders.models import Dataset
from recommenders.services.datasets import DatasetExists, check_name_free, save_dataset

EPILOG = """formats:
  online-retail  the UCI Online Retail CSV (optionally .gz); purchases become interactions,
                 cancellations, returns and rows without a customer are dropped and counted
  movielens      a MovieLens folder: 100K layout (u.data, u.item) or CSV layout (ratings.csv, movies.csv)
  csv            an interactions CSV (PATH) plus optional --items CSV, mapped with --columns / --item-columns

examples:
  manage.py import_dataset online-retail data/online-retail/online_retail.csv.gz --name online-retail
  manage.py import_dataset movielens ../shared/data/ml-100k --name ml-100k
  manage.py import_dataset csv events.csv --items products.csv --name shop \\
      --columns user=customer,item=sku,timestamp=ts,event=type --item-columns id=sku,title=name,price=price

A malformed file is refused with its name, line number and reason, and nothing is written.
"""


class Command(BaseCommand):
    help = "Import a catalogue and its interactions as a named data set (all or nothing)."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        parser.epilog = EPILOG
        return parser

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("format", choices=("online-retail", "movielens", "csv"), help="the file layout")
        parser.add_argument("path", type=Path, help="the file (online-retail, csv) or folder (movielens)")
        parser.add_argument("--name", required=True, help="the data set's name (letters, digits, - and _)")
        parser.add_argument("--replace", action="store_true", help="replace a data set of the same name")
        parser.add_argument(
            "--if-missing", action="store_true", help="do nothing (successfully) when the name exists already"
        )
        parser.add_argument(
            "--holdout-fraction",
            type=float,
            help="hold out the last fraction of the time span (e.g. 0.2): variants never train on it, and the "
            "traffic simulator uses it as the shoppers' real next purchases",
        )
        csv_options = parser.add_argument_group("csv format")
        csv_options.add_argument("--items", type=Path, help="items CSV; interactions naming other items are refused")
        csv_options.add_argument(
            "--columns",
            default="user=user,item=item,timestamp=timestamp",
            help=f"interaction columns as key=column pairs; keys: {', '.join(INTERACTION_KEYS)} "
            "(user, item, timestamp required)",
        )
        csv_options.add_argument(
            "--item-columns", default="id=id", help=f"item columns as key=column pairs; keys: {', '.join(ITEM_KEYS)}"
        )
        csv_options.add_argument("--event-type", default="purchase", help="event type when no event column is mapped")
        csv_options.add_argument("--timestamp-format", help="strptime format, e.g. '%%d/%%m/%%Y %%H:%%M' (default: "
                                 "epoch seconds or ISO 8601)")  # fmt: skip
        csv_options.add_argument("--time-zone", default="UTC", help="zone of naive timestamps (default UTC)")
        csv_options.add_argument("--delimiter", default=",", help="field separator (default ,)")
        csv_options.add_argument("--encoding", default="utf-8", help="text encoding (default utf-8)")

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"]
        try:
            validate_slug(name)
        except ValidationError:
            raise CommandError(f"--name {name!r}: use letters, digits, hyphens and underscores only.") from None
        if options["if_missing"] and Dataset.objects.filter(name=name).exists():
            self.stdout.write(f"Data set {name!r} exists already; nothing to do.")
            return
        try:
            check_name_free(name, replace=options["replace"])
        except DatasetExists as error:
            raise CommandError(str(error)) from None

        fraction = options["holdout_fraction"]
        if fraction is not None and not 0 < fraction < 1:
            raise CommandError(f"--holdout-fraction {fraction}: use a number strictly between 0 and 1, e.g. 0.2.")
        started = time.perf_counter()
        show = sys.stderr.isatty()
        with tqdm(desc="reading", unit="B", unit_scale=True, disable=not show, leave=False) as bar:

            def on_read(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            parsed = self._parse(options, on_read)
        parsed_at = time.perf_counter()
        with tqdm(desc="writing", unit="rows", unit_scale=True, disable=not show, leave=False) as bar:

            def on_write(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                dataset = save_dataset(
                    parsed, name, replace=options["replace"], progress=on_write, holdout_fraction=fraction
                )
            except DatasetExists as error:
                raise CommandError(str(error)) from None
        finished = time.perf_counter()
        report = parsed.report
        self.stdout.write(self.style.SUCCESS(f"Imported data set {dataset.name!r} ({parsed.source_format})."))
        self.stdout.write(
            f"  {dataset.user_count:,} users x {dataset.item_count:,} items, {dataset.interaction_count:,} interactions"
        )
        self.stdout.write(f"  rows read {report.get('rows_read', 0):,}, kept {report.get('rows_kept', 0):,}")
        if dataset.holdout_from:
            self.stdout.write(f"  held out from {dataset.holdout_from:%Y-%m-%d %H:%M} on (never trained on)")
        for reason, count in report.get("dropped", {}).items():
            self.stdout.write(f"  dropped ({reason.replace('_', ' ')}): {count:,}")
        self.stdout.write(
            f"  took {finished - started:.1f} s (parse {parsed_at - started:.1f} s, write {finished - parsed_at:.1f} s)"
        )

    def _parse(self, options: dict[str, Any], progress: ProgressCallback) -> ParsedDataset:
        path: Path = options["path"]
        try:
            if options["format"] == "online-retail":
                return parse_online_retail(path, progress)
            if options["format"] == "movielens":
                return parse_movielens(path, progress)
            try:
                csv_options = CsvOptions(
                    columns=parse_mapping(options["columns"], INTERACTION_KEYS, ("user", "item", "timestamp")),
                    item_columns=parse_mapping(options["item_columns"], ITEM_KEYS, ("id",)),
                    default_event=options["event_type"],
                    timestamp_format=options["timestamp_format"],
                    time_zone=options["time_zone"],
                    delimiter=options["delimiter"],
                    encoding=options["encoding"],
                )
            except MappingError as error:
                raise CommandError(f"column mapping: {error}") from None
            return parse_generic_csv(path, options["items"], csv_options, progress)
        except ImportFailed as error:
            raise CommandError(f"Nothing was imported. {error}") from None
