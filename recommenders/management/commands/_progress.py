"""Watching a queued training or evaluation from a command: a progress bar until it ends."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from django.core.management.base import CommandError, OutputWrapper
from tqdm import tqdm

from recommenders.models import Evaluation, TrainingRun

TERMINAL = ("succeeded", "failed")


def wait_for(row: TrainingRun | Evaluation, timeout: float, out: TextIO | OutputWrapper) -> TrainingRun | Evaluation:
    """Poll `row` until it succeeds or fails, drawing its progress; CommandError on failure or timeout."""
    deadline = time.monotonic() + timeout
    warned = False
    with tqdm(total=100, desc=str(row.variant), unit="%", disable=not sys.stderr.isatty(), leave=True) as bar:
        while True:
            row.refresh_from_db()
            bar.update(row.progress - bar.n)
            bar.set_postfix_str(row.message[:60])
            if row.status in TERMINAL:
                break
            if row.status == "queued" and not warned and time.monotonic() > deadline - timeout + 15:
                out.write(
                    "Still queued after 15 s: is a worker running? "
                    "(make demo starts one; or: celery -A abplatform worker -Q default,training)\n"
                )
                warned = True
            if time.monotonic() > deadline:
                raise CommandError(f"Gave up waiting after {timeout:.0f} s; the {row} goes on in the background.")
            time.sleep(0.5)
    if row.status == "failed":
        raise CommandError(f"{row} failed: {row.error}\n{row.traceback}")
    return row
