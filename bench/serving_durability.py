"""Serving logs lost when the web server is killed: acknowledged answers without their stored rows.

The lean path (serving/lean.py) answers a recommendation request before its served request, exposure and
impressions are stored: a per-process buffer (serving/services/serving_log.py) stores them a moment later.
This measures what a crash loses. It starts the real server as production runs it (granian WSGI with the
lean path, --workers processes x --threads blocking threads, as the Dockerfile; or gunicorn as
gunicorn.conf.py configures it, --server gunicorn) in its own process group against PostgreSQL, sends
recommendation requests at a steady --rate from --clients threads over HTTP keep-alive (each request a new
user, so each answer has its own exposure), records every acknowledged answer (its request_id and when its
response was read), and after --seconds of load kills the server's whole process group with SIGKILL. Once
it is gone, it counts the acknowledged request_ids with no ServedRequest row, the exposures and impressions
missing, and the loss window: the age at the kill of the oldest lost answer, and lost / throughput. The
control beside it stops the server gracefully instead (SIGTERM to the server, which stops its workers).
Each of --runs runs does both; the figures are medians with min-max over the runs (not the best).

It needs PostgreSQL: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/abplatform_bench, created
and migrated when missing; a test database is refused). The Online Retail data set is imported as
`online-retail` if missing, the variants retail-popularity and retail-item-knn trained if missing, the
experiment `bench-durability` created and started, and an API token created. The served requests,
exposures and impressions it writes are deleted after each run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/abplatform_bench \
      nice -n 10 python bench/serving_durability.py --runs 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/abplatform_bench"
KEY = "bench-durability"


def _database_url() -> str:
    """DATABASE_URL (default: the bench database), created and migrated when missing; never a test database."""
    url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE)
    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    if not parts.scheme.startswith("postgres") or not name or name.startswith("test"):
        sys.exit(f"DATABASE_URL must name a PostgreSQL database that is not a test database: {url}")
    import psycopg2

    admin = psycopg2.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            print(f"creating database {name} ...", flush=True)
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=["granian", "gunicorn"], default="granian",
                        help="granian WSGI as the Dockerfile runs it (default), or gunicorn with "
                        "gunicorn.conf.py")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="kill runs, each with a graceful-stop control (default 3)")
    parser.add_argument("--rate", type=float, nargs="+", default=[400.0, 3000.0],
                        help="offered requests per second, all clients together; several rates are measured in "
                        "turn in each run (default 400 3000: a moderate load, and more than 2 workers on 2 "
                        "cores answer, i.e. saturation)")  # fmt: skip
    parser.add_argument("--clients", type=int, default=4, help="client threads, one keep-alive connection each "
                        "(default 4)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds of load before the kill (default 6)")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--source", type=Path, default=REPO, help="the source tree the server runs (default "
                        "this one; e.g. a `git archive` of another revision, to compare before and after)")  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="print only, do not write bench/results")
    args = parser.parse_args()
    _database_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    secret = _prepare()
    outcomes: dict[tuple[float, signal.Signals], list[_Outcome]] = {}
    for run in range(1, args.runs + 1):
        for rate in args.rate:
            for how in (signal.SIGKILL, signal.SIGTERM):
                outcome = _run(args, secret, rate, how)
                outcomes.setdefault((rate, how), []).append(outcome)
                print(f"run {run} {rate:>6g}/s offered {how.name:<7} {outcome.line()}", flush=True)
    _summary(args, outcomes)


def _prepare() -> str:
    from benchdata import bench_experiment

    from recommenders.importers.online_retail import parse_online_retail
    from recommenders.models import Dataset
    from recommenders.services.datasets import save_dataset
    from serving.models import ApiToken
    from serving.services.tokens import create_token

    dataset = Dataset.objects.filter(name="online-retail").first()
    if dataset is None:
        print("importing the Online Retail data ...", flush=True)
        parsed = parse_online_retail(REPO / "data" / "online-retail" / "online_retail.csv.gz")
        dataset = save_dataset(parsed, "online-retail")
    arms: list[tuple[str, str, str, dict[str, object]]] = [
        ("control", "retail-popularity", "popularity", {}),
        ("knn", "retail-item-knn", "item_knn", {}),
    ]
    bench_experiment(KEY, "Durability benchmark", dataset, arms)
    ApiToken.objects.filter(name="bench-durability").delete()
    return create_token("bench-durability", ["serve"])[1]


@dataclass(frozen=True)
class _Outcome:
    """One run: answers acknowledged, and of them those whose served request, exposure or impressions are missing."""

    signal: str
    acknowledged: int
    rate: float  # acknowledged answers per second over the last second before the stop
    lost: int
    exposures_lost: int
    impressions_lost: int
    oldest_lost_ms: float  # age at the stop of the oldest lost answer (0 when none)
    errors: int  # requests not answered 200 before the stop
    cpu_ms: float  # CPU time of the server's processes per acknowledged answer, during the load

    @property
    def lost_share(self) -> float:
        return self.lost / self.acknowledged if self.acknowledged else 0.0

    @property
    def lost_ms(self) -> float:
        """Lost answers over the throughput: the span of answers lost, in ms."""
        return 1000 * self.lost / self.rate if self.rate else 0.0

    def line(self) -> str:
        return (
            f"acknowledged {self.acknowledged:>6,} at {self.rate:>5,.0f}/s, "
            f"lost {self.lost:>4} ({self.lost_share:6.2%}), "
            f"exposures {self.exposures_lost}, impressions {self.impressions_lost}; oldest lost "
            f"{self.oldest_lost_ms:6.1f} ms, lost / rate {self.lost_ms:6.1f} ms; errors {self.errors}; "
            f"server CPU {self.cpu_ms:.2f} ms/answer"
        )


def _run(args: argparse.Namespace, secret: str, rate: float, how: signal.Signals) -> _Outcome:
    server = _start(args)
    try:
        prefix = f"dur-{uuid.uuid4().hex[:8]}"
        acknowledged: list[tuple[str, str, float]] = []  # (request_id, user_id, time.time() of the answer)
        errors = [0]
        stop = threading.Event()
        lock = threading.Lock()
        clients = [
            threading.Thread(target=_client, args=(args, secret, rate, prefix, index, stop, lock, acknowledged, errors))
            for index in range(args.clients)
        ]
        cpu_before = _group_cpu(server.pid)
        for client in clients:
            client.start()
        time.sleep(args.seconds)
        cpu = _group_cpu(server.pid) - cpu_before
        stopped_at = time.time()
        if how == signal.SIGKILL:
            os.killpg(server.pid, signal.SIGKILL)
        else:
            server.send_signal(signal.SIGTERM)  # the server's own graceful stop
        stop.set()
        server.wait(timeout=60)
        if how == signal.SIGKILL:
            _wait_group_gone(server.pid)
        for client in clients:
            client.join()
        with lock:
            answered = [entry for entry in acknowledged if entry[2] <= stopped_at]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    _wait_backends_gone()
    return _count(how, answered, stopped_at, errors[0], cpu)


def _start(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    if args.server == "granian":
        command = [sys.executable, "-m", "granian", "--interface", "wsgi", "abplatform.wsgi:application",
                   "--host", "127.0.0.1", "--port", str(args.port), "--workers", str(args.workers),
                   "--blocking-threads", str(args.threads), "--log-level", "warning"]  # fmt: skip
    else:  # gunicorn.conf.py (gthread, worker_exit) is read from the working directory
        command = [sys.executable, "-m", "gunicorn", "abplatform.wsgi", "--bind", f"127.0.0.1:{args.port}",
                   "--workers", str(args.workers), "--threads", str(args.threads),
                   "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, "DJANGO_DEBUG": "false", "LOG_LEVEL": "WARNING", "PYTHONDONTWRITEBYTECODE": "1"}
    # Its own session, so that the kill reaches the server and every worker at once.
    server = subprocess.Popen(command, cwd=args.source, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{args.port}/healthz", timeout=2)
            return server
        except OSError:
            time.sleep(0.3)
    os.killpg(server.pid, signal.SIGKILL)
    sys.exit(f"the {args.server} server did not start within 60 s")


def _client(
    args: argparse.Namespace,
    secret: str,
    rate: float,
    prefix: str,
    index: int,
    stop: threading.Event,
    lock: threading.Lock,
    acknowledged: list[tuple[str, str, float]],
    errors: list[int],
) -> None:
    """Send requests at rate / clients per second on one keep-alive connection; record every 200 answer."""
    interval = args.clients / rate
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"}
    path = f"/api/v1/experiments/{KEY}/recommendations"
    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
    next_at = time.monotonic() + interval * index / args.clients
    n = 0
    while not stop.is_set():
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        next_at = max(next_at + interval, time.monotonic() - interval)  # no burst to catch up after a stall
        n += 1
        user = f"{prefix}-{index}-{n}"
        try:
            connection.request("POST", path, json.dumps({"user_id": user, "k": 10}), headers)
            response = connection.getresponse()
            body = response.read()
            at = time.time()
        except (OSError, http.client.HTTPException):
            if not stop.is_set():
                with lock:
                    errors[0] += 1
            connection.close()
            if stop.is_set():
                return
            continue
        if response.status == 200:
            with lock:
                acknowledged.append((json.loads(body)["request_id"], user, at))
        elif not stop.is_set():
            with lock:
                errors[0] += 1


def _wait_group_gone(pgid: int) -> None:
    """Until no process of the server's group is left (the workers die with the same kill)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _wait_backends_gone() -> None:
    """Until the killed server's database connections have ended (their open transactions rolled back)."""
    from django.db import connection

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.05)


def _group_cpu(pgid: int) -> float:
    """User + system CPU seconds of every process of the server's process group (all their threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _count(
    how: signal.Signals, answered: list[tuple[str, str, float]], stopped_at: float, errors: int, cpu: float
) -> _Outcome:
    from serving.models import Event, Exposure, ServedRequest

    ids = [request_id for request_id, _, _ in answered]
    found = ServedRequest.objects.filter(request_id__in=ids).values_list("request_id", flat=True)
    stored = {str(value) for value in found}
    lost = [(request_id, at) for request_id, _, at in answered if request_id not in stored]
    users = [user for _, user, _ in answered]
    exposed = set(Exposure.objects.filter(experiment__key=KEY, user_id__in=users).values_list("user_id", flat=True))
    impressions = Event.objects.filter(request_id__in=ids, type="impression").count()
    last_second = sum(1 for _, _, at in answered if at > stopped_at - 1.0)
    outcome = _Outcome(
        signal=how.name,
        acknowledged=len(answered),
        rate=float(last_second),
        lost=len(lost),
        exposures_lost=len(users) - len(exposed),
        impressions_lost=10 * len(answered) - impressions,
        oldest_lost_ms=1000 * (stopped_at - min(at for _, at in lost)) if lost else 0.0,
        errors=errors,
        cpu_ms=1000 * cpu / len(answered) if answered else 0.0,
    )
    Event.objects.filter(request_id__in=ids).delete()
    ServedRequest.objects.filter(request_id__in=ids).delete()
    Exposure.objects.filter(experiment__key=KEY, user_id__in=users).delete()
    return outcome


def _summary(args: argparse.Namespace, outcomes: dict[tuple[float, signal.Signals], list[_Outcome]]) -> None:
    from report import Spread, write

    def spreads(runs: list[_Outcome]) -> dict[str, Spread]:
        return {
            "acknowledged": Spread.of([o.acknowledged for o in runs]),
            "answers per second before the stop": Spread.of([o.rate for o in runs]),
            "lost": Spread.of([o.lost for o in runs]),
            "lost %": Spread.of([100 * o.lost_share for o in runs]),
            "exposures lost": Spread.of([o.exposures_lost for o in runs]),
            "impressions lost": Spread.of([o.impressions_lost for o in runs]),
            "oldest lost answer's age at the stop (ms)": Spread.of([o.oldest_lost_ms for o in runs]),
            "lost / throughput (ms)": Spread.of([o.lost_ms for o in runs]),
            "errors": Spread.of([o.errors for o in runs]),
            "server CPU per answer (ms)": Spread.of([o.cpu_ms for o in runs]),
        }

    figures: dict[str, object] = {
        "load": {
            "server": f"{args.server}, {args.workers} workers x {args.threads} threads",
            "source": "this tree" if args.source == REPO else str(args.source),
            "clients (keep-alive connections)": args.clients,
            "seconds of load before the stop": args.seconds,
        }
    }
    for (rate, how), runs in outcomes.items():
        name = "SIGKILL" if how == signal.SIGKILL else "SIGTERM (graceful control)"
        figures.setdefault(f"{rate:g} requests/s offered", {})[name] = spreads(runs)  # type: ignore[index]
    print(f"\nover {args.runs} runs, {args.server} {args.workers} workers x {args.threads} threads, "
          f"{args.clients} clients:")  # fmt: skip
    for key, value in figures.items():
        if key == "load":
            continue
        for name, table in value.items():  # type: ignore[attr-defined]
            print(f"{key}, {name}")
            for figure, spread in table.items():
                print(f"  {figure:<44}{spread.text(1)}")
    if not args.no_write:
        print(f"written to {write('serving_durability', figures)}")


if __name__ == "__main__":
    main()
