"""What sticky bandit assignment costs on the serving path, in-process, beside an A/B test.

Both experiments serve the same two trained popularity variants (so the recommendation itself is
cheap and the assignment's share shows), through ``serve.serve`` with the lean WSGI path's
``LogBuffer`` as the log writer (what ``serving/lean.py`` does). Four passes of --users requests,
k = 10, best of --repeat, microseconds per request:

  * A/B: bucketing only;
  * bandit, new users: one indexed lookup of the (experiment, user) exposure (a miss), then
    bucketing with the current period's weights;
  * bandit, returning users, same process: answered from the per-process sticky cache;
  * bandit, returning users after the cache is cleared (another process, or the cache's bound):
    one indexed lookup that finds the exposure.

    DATABASE_URL=postgres://... python bench/bandit_serving.py [--users 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")

import django
from cachetools import TTLCache

django.setup()

from benchdata import bench_experiment, held_out_retail  # noqa: E402  (bench/, the script's directory)

from serving.models import Event, Exposure, ServedRequest  # noqa: E402
from serving.services import serve  # noqa: E402
from serving.services.serving_log import LogBuffer  # noqa: E402

NAME = "bench-bandit-serving"


def _pass(key: str, users: list[str], buffer: LogBuffer, *, clear: bool) -> float:
    """Seconds per request of one pass over `users` (the config stays cached; `clear` drops sticky arms)."""
    serve.serve(key, "warm-up", 10, log=buffer.add)
    if clear:
        serve._sticky.clear()  # keep the config, forget the arms: every user needs the exposure lookup
    start = time.perf_counter()
    for user in users:
        serve.serve(key, user, 10, log=buffer.add)
    elapsed = time.perf_counter() - start
    buffer.flush()
    return elapsed / len(users)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    # Measure the assignment, not the once-a-second config reload.
    serve._configs = TTLCache(maxsize=serve.CONFIGS_MAX, ttl=3600.0)
    dataset = held_out_retail("online-retail-bench")
    arms = [("control", "retail-popularity", "popularity", {}), ("treatment", "retail-popularity-b", "popularity", {})]
    ab = bench_experiment(f"{NAME}-ab", "Serving cost, A/B", dataset, arms)
    bandit = bench_experiment(f"{NAME}-bandit", "Serving cost, bandit", dataset, arms, design="bandit",
                              primary_metric="ctr")  # fmt: skip
    buffer = LogBuffer()
    rows: dict[str, list[float]] = {}
    try:
        for attempt in range(args.repeat):
            users = [f"bench{attempt}-{i}" for i in range(args.users)]
            rows.setdefault("A/B", []).append(_pass(ab.key, users, buffer, clear=False))
            rows.setdefault("bandit, new users (lookup misses)", []).append(
                _pass(bandit.key, users, buffer, clear=True)
            )
            rows.setdefault("bandit, returning users (process cache)", []).append(
                _pass(bandit.key, users, buffer, clear=False)
            )
            rows.setdefault("bandit, returning users (indexed lookup)", []).append(
                _pass(bandit.key, users, buffer, clear=True)
            )
    finally:
        buffer.stop()
        for experiment in (ab, bandit):
            Event.objects.filter(experiment=experiment).delete()
            ServedRequest.objects.filter(experiment=experiment).delete()
            Exposure.objects.filter(experiment=experiment).delete()
    print(f"{args.users:,} requests per pass, k = 10, best of {args.repeat}; load average {os.getloadavg()}\n")
    print("| path | µs per request (best) | all passes |")
    print("|---|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {min(values) * 1e6:.0f} | {', '.join(f'{v * 1e6:.0f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
