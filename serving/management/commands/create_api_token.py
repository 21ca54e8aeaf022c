"""`manage.py create_api_token NAME`: a token for a shop (or the simulator) to call the APIs."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from serving.models import ApiToken
from serving.services.tokens import TokenError, create_token, revoke_token


class Command(BaseCommand):
    help = (
        "Create an API token and print its secret once (only a hash is stored). Clients send it as "
        "'Authorization: Bearer <secret>'. Scopes: serve (ask for recommendations), ingest (send events), "
        "simulate (name a request's simulation run: the token of simulate --http, with serve and ingest)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="who uses the token, e.g. shop-frontend")
        parser.add_argument(
            "--scope", action="append", choices=ApiToken.Scope.values,
            help="repeat for several; default: serve and ingest",
        )  # fmt: skip
        parser.add_argument(
            "--experiment", action="append", default=[], metavar="KEY",
            help="bind the token to this experiment (repeat for several): it may serve and write events for "
            "these only; default: every experiment",
        )  # fmt: skip
        parser.add_argument("--revoke", action="store_true", help="revoke the token of this name instead")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["revoke"]:
            if not revoke_token(options["name"]):
                raise CommandError(f"No live token named {options['name']!r}.")
            self.stdout.write(self.style.SUCCESS(f"Revoked {options['name']!r}."))
            return
        try:
            scopes = options["scope"] or [ApiToken.Scope.SERVE, ApiToken.Scope.INGEST]
            token, secret = create_token(options["name"], scopes, options["experiment"])
        except TokenError as error:
            raise CommandError(str(error)) from None
        bound = f", bound to {', '.join(token.experiments)}" if token.experiments else ""
        self.stdout.write(
            self.style.SUCCESS(f"Created token {token.name!r} with scopes {', '.join(token.scopes)}{bound}.")
        )
        self.stdout.write("Its secret (shown this once; store it now):")
        self.stdout.write(secret)
