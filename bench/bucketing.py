"""Throughput benchmark of engine/bucketing.py, optionally beside the GrowthBook Python SDK.

Prints one plain-text table of assignments per second:

  * ours, scalar: ``assign`` called once per id in a Python loop (the live-request path), for an
    unlayered 20/80 experiment at 100 % traffic (every id gets an arm) and for a layered one
    (two hashes per admitted id), plus the bare ``bucket`` function;
  * ours, vectorised: ``assign_many`` on 1,000,000 and 10,000,000 ids, both from a Python list of
    str (includes UTF-8 encoding into a fixed-width bytes array) and from a prebuilt ``S`` array
    (hashing and arm choice only; what the simulator pays when it keeps ids as bytes);
  * GrowthBook, if importable: the raw path (``gbhash`` v2 + ``chooseVariation`` over ranges
    computed once by ``getBucketRanges``) and the full ``GrowthBook.run(Experiment)`` path with
    one reused instance whose attributes are set per id. GrowthBook's hash differs from ours:
    this compares cost per assignment, not bucket values;
  * the issue's reference figure for GrowthBook (26,000/s), as a stated number, not a measurement.

Each rate is the best of ``--repeats`` runs, as wall-clock and as CPU time of this process
(``time.process_time``): on a shared machine the CPU-time rate is less distorted by waiting for a
core, but both are noisy; the load average is printed with the table.

GrowthBook is not a project dependency: ``pip install --dry-run growthbook`` (4.0.0) would add
aiohttp, cryptography, cffi, multidict, yarl, frozenlist, propcache, aiosignal, aiohappyeyeballs and
pycparser to the shared environment, so it is kept out of it. To measure it, install it aside and
point the bench there: ``pip install --target /tmp/gbsdk growthbook==4.0.0`` then
``--growthbook-path /tmp/gbsdk`` (the directory is appended to sys.path, so packages already
installed keep their versions).

Ids are ``user-0000000`` style (12 ASCII characters, two 8-byte words), the long end of typical
numeric/alphanumeric e-commerce ids.

Usage: python bench/bucketing.py [--scalar-ids 200000] [--vector-sizes 1000000 10000000]
                                 [--repeats 3] [--growthbook-path DIR] [--no-growthbook]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

from engine.bucketing import Allocation, LayerSlot, assign, assign_many, bucket

SCALAR_TARGET = 260_000  # ten times the GrowthBook figure
VECTOR_TARGET = 5_000_000
GROWTHBOOK_REFERENCE = 26_000  # the figure for the GrowthBook Python SDK on this kind of machine
SALT = "bench-exp"


def make_ids(n: int) -> list[str]:
    return [f"user-{i:07d}" for i in range(n)]


def best_rate(run: Callable[[], object], count: int, repeats: int) -> tuple[float, float]:
    """(best wall-clock rate, best CPU-time rate) in items per second over ``repeats`` runs."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        run()
        best_wall = min(best_wall, time.perf_counter() - wall0)
        best_cpu = min(best_cpu, time.process_time() - cpu0)
    return count / best_wall, count / max(best_cpu, 1e-9)


def load_growthbook(extra_path: str | None) -> Any:
    if extra_path:
        # Appended, not prepended: packages already in the environment keep their versions.
        sys.path.append(extra_path)
    try:
        import growthbook
        import growthbook.core
    except ImportError as error:
        print(f"GrowthBook SDK not importable ({error}); only the reference figure is shown.")
        return None
    return growthbook


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scalar-ids", type=int, default=200_000, help="ids for the scalar loops (default 200,000)")
    parser.add_argument(
        "--vector-sizes",
        type=int,
        nargs="+",
        default=[1_000_000, 10_000_000],
        help="id counts for assign_many (default 1,000,000 and 10,000,000)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the best is reported")
    parser.add_argument(
        "--growthbook-path",
        default=None,
        help="extra directory (appended to sys.path) holding the growthbook package, e.g. a pip --target install",
    )
    parser.add_argument("--no-growthbook", action="store_true", help="skip the GrowthBook rows")
    args = parser.parse_args(argv)

    rows: list[tuple[str, int, float | None, float | None, int | None]] = []
    unlayered = Allocation(traffic=1.0, weights=[0.2, 0.8])
    layered = Allocation(traffic=1.0, weights=[0.2, 0.8], layer=LayerSlot("bench-layer", 0, 5000))

    ids = make_ids(args.scalar_ids)
    n = len(ids)

    def scalar_assign() -> None:
        for user_id in ids:
            assign(unlayered, SALT, user_id)

    def scalar_layered() -> None:
        for user_id in ids:
            assign(layered, SALT, user_id)

    def scalar_bucket() -> None:
        for user_id in ids:
            bucket(SALT, user_id)

    rows.append(
        ("ours: assign() scalar, unlayered 20/80", n, *best_rate(scalar_assign, n, args.repeats), SCALAR_TARGET)
    )
    rows.append(
        ("ours: assign() scalar, layer slot 50%", n, *best_rate(scalar_layered, n, args.repeats), SCALAR_TARGET)
    )
    rows.append(("ours: bucket() scalar", n, *best_rate(scalar_bucket, n, args.repeats), None))

    for size in args.vector_sizes:
        many = make_ids(size)
        as_bytes = np.array(many, dtype="S")
        rows.append(
            (
                "ours: assign_many(list[str])",
                size,
                *best_rate(partial(assign_many, unlayered, SALT, many), size, args.repeats),
                VECTOR_TARGET,
            )
        )
        rows.append(
            (
                "ours: assign_many(S array)",
                size,
                *best_rate(partial(assign_many, unlayered, SALT, as_bytes), size, args.repeats),
                VECTOR_TARGET,
            )
        )
        del many, as_bytes

    gb_version = "not measured"
    growthbook = None if args.no_growthbook else load_growthbook(args.growthbook_path)
    if growthbook is not None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            gb_version = version("growthbook")
        except PackageNotFoundError:
            gb_version = getattr(growthbook, "__version__", "unknown version")
        core = growthbook.core
        ranges = core.getBucketRanges(2, 1.0, [0.2, 0.8])

        def gb_raw() -> None:
            gbhash, choose = core.gbhash, core.chooseVariation
            for user_id in ids:
                choose(gbhash(SALT, user_id, 2), ranges)

        experiment = growthbook.Experiment(key=SALT, variations=[0, 1], weights=[0.2, 0.8], coverage=1.0)
        gb = growthbook.GrowthBook(attributes={"id": ids[0]})

        def gb_run() -> None:
            for user_id in ids:
                gb.set_attributes({"id": user_id})
                gb.run(experiment)

        rows.append(("growthbook: gbhash v2 + chooseVariation", n, *best_rate(gb_raw, n, args.repeats), None))
        rows.append(("growthbook: GrowthBook.run(Experiment)", n, *best_rate(gb_run, n, args.repeats), None))
        gb.destroy()
    rows.append(("growthbook: issue's reference figure", 0, GROWTHBOOK_REFERENCE, None, None))

    print(f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"python {platform.python_version()}, numpy {np.__version__}, growthbook {gb_version}")
    print(f"repeats: {args.repeats} (best shown); ids like {make_ids(1)[0]!r}")
    print()
    header = f"{'path':42s} {'ids':>11s} {'wall /s':>13s} {'cpu /s':>13s} {'target /s':>11s} {'meets':>6s}"
    print(header)
    print("-" * len(header))
    for name, count, wall, cpu, target in rows:
        count_s = f"{count:,}" if count else "-"
        wall_s = f"{wall:,.0f}" if wall is not None else "-"
        cpu_s = f"{cpu:,.0f}" if cpu is not None else "-"
        target_s = f"{target:,}" if target else "-"
        meets = ("yes" if wall is not None and wall >= target else "no") if target else ""
        print(f"{name:42s} {count_s:>11s} {wall_s:>13s} {cpu_s:>13s} {target_s:>11s} {meets:>6s}")
    print()
    print("'meets' compares the wall-clock rate. Shared 2-core machine: figures vary run to run.")


if __name__ == "__main__":
    main()
