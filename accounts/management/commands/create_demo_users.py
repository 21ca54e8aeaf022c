"""`manage.py create_demo_users`: one user per role, for the demo; prints the credentials."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.roles import DATA_SCIENTISTS, PRODUCT_MANAGERS, REVIEWERS

DEMO_USERS = (
    ("pm", "Pat Manager", PRODUCT_MANAGERS),
    ("ds", "Dana Scientist", DATA_SCIENTISTS),
    ("reviewer", "Robin Reviewer", REVIEWERS),
)


class Command(BaseCommand):
    help = (
        "Create (or reset) one demo user per role: pm (Product managers), ds (Data scientists) and "
        "reviewer (Reviewers), and print their credentials. For local demos only: the passwords are public, so "
        "it refuses to run when ABPLATFORM_ENV=production."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--password-suffix", default="-demo-2026", help="password = username + this suffix")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError(
                "create_demo_users refuses to run with ABPLATFORM_ENV=production: its passwords are public. "
                "Create real accounts with `manage.py createsuperuser` and give them a role in the admin."
            )
        self.stdout.write("Demo users (log in at http://127.0.0.1:8000/accounts/login/):")
        for username, full_name, role in DEMO_USERS:
            first, last = full_name.split(" ", 1)
            user, _ = User.objects.get_or_create(username=username, defaults={"first_name": first, "last_name": last})
            password = f"{username}{options['password_suffix']}"
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get(name=role)])
            self.stdout.write(f"  {role:<17} username {username:<9} password {password}")
