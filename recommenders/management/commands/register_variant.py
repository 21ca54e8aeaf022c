"""`manage.py register_variant FILE.yaml`: register one or more variants from a YAML file."""

from __future__ import annotations

from argparse import ArgumentParser, RawDescriptionHelpFormatter
from pathlib import Path
from typing import Any

import yaml
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from recommenders.algorithms import registry
from recommenders.models import Variant
from recommenders.services.variants import VariantError, VariantSpec, register_variant

EPILOG = """The file holds one variant, or a list of them under `variants:`:

  name: ease-retail            # letters, digits, - and _; registering a name again adds a version
  algorithm: ease              # one of: {algorithms}
  dataset: online-retail       # an imported data set
  description: EASE with a stronger L2
  params:                      # checked against the algorithm's parameters
    l2: 300

Hybrids blend algorithms or registered variants:

  name: blend
  algorithm: hybrid
  dataset: online-retail
  params:
    components:
      - {{variant: ease-retail@1, weight: 0.7}}
      - {{algorithm: content_tfidf, weight: 0.3}}
"""


class Command(BaseCommand):
    help = "Register recommender variants described in a YAML file (all or none)."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        parser.epilog = EPILOG.format(algorithms=", ".join(registry.names()))
        return parser

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", type=Path, help="the YAML file")
        parser.add_argument("--author", help="username recorded as the author")
        parser.add_argument(
            "--if-missing", action="store_true", help="skip variants whose name is registered already (no new version)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise CommandError(f"{path}: cannot read it ({error.strerror})") from None
        except yaml.YAMLError as error:
            raise CommandError(f"{path}: not valid YAML: {error}") from None
        entries = document.get("variants") if isinstance(document, dict) and "variants" in document else [document]
        if not isinstance(entries, list) or not entries:
            raise CommandError(f"{path}: expected a variant (a mapping) or `variants:` with a list of them")
        author = None
        if options["author"]:
            author = User.objects.filter(username=options["author"]).first()
            if author is None:
                raise CommandError(f"--author: no user named {options['author']!r}")
        with transaction.atomic():
            for position, entry in enumerate(entries):
                where = f"{path}" if len(entries) == 1 else f"{path}, variant {position + 1}"
                name = entry.get("name") if isinstance(entry, dict) else None
                if options["if_missing"] and Variant.objects.filter(name=name).exists():
                    self.stdout.write(f"{name} is registered already; skipped.")
                    continue
                try:
                    variant = register_variant(_spec(where, entry), author)
                except VariantError as error:
                    raise CommandError(f"{where}: nothing was registered. {error}") from None
                self.stdout.write(
                    self.style.SUCCESS(f"Registered {variant.label} ({variant.algorithm} on {variant.dataset.name}).")
                )


def _spec(where: str, entry: Any) -> VariantSpec:
    if not isinstance(entry, dict):
        raise CommandError(f"{where}: expected a mapping with name, algorithm, dataset, params")
    unknown = sorted(set(entry) - {"name", "algorithm", "dataset", "params", "description"})
    missing = [key for key in ("name", "algorithm", "dataset") if key not in entry]
    if unknown or missing:
        problems = [f"unknown key {key!r}" for key in unknown] + [f"missing {key!r}" for key in missing]
        raise CommandError(f"{where}: {'; '.join(problems)}")
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise CommandError(f"{where}: params must be a mapping of parameter names to values")
    spec = VariantSpec(
        name=str(entry["name"]),
        algorithm=str(entry["algorithm"]),
        dataset=str(entry["dataset"]),
        params=params,
        description=str(entry.get("description") or ""),
    )
    return spec
