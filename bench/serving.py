"""Serving and ingestion throughput under gunicorn on loopback, measured with wrk.

Prints one table: requests per second and latency percentiles (50/90/99 %) of

  * POST /api/v1/experiments/{key}/recommendations (k=10, user ids cycling through the data
    set's customers, so every request assigns an arm, recommends, and logs the served request,
    the exposure and 10 impressions);
  * POST /api/v1/events with batches of --batch events (events per second = requests x batch);
  * beside it, a raw PostgreSQL COPY of the same number of event rows into a scratch copy of the
    events table: the physical limit of ingestion on this machine.

It needs PostgreSQL (DATABASE_URL=postgres://...), the Online Retail data set imported as
`online-retail`, and wrk (apt-get install wrk). It registers and trains two small variants
(retail-popularity and retail-item-knn, if missing), creates and starts the experiment
`bench-serving`, creates an API token, starts gunicorn on 127.0.0.1:--port with --workers
workers, runs wrk for --seconds per endpoint with --connections connections, and stops gunicorn.

On a shared machine the rates follow the other load, so it also reports the CPU time per
request of the gunicorn processes, of the database's backends and of wrk (from /proc), and
the rate the two server sides would reach with every core to themselves.
Events and served requests it writes are deleted at the end (--keep to keep them).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/abplatform python bench/serving.py
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")

import django  # noqa: E402

django.setup()

from benchdata import bench_experiment  # noqa: E402  (bench/, the script's directory)
from django.db import connection  # noqa: E402

from experiments.models import ApiToken, Event, ServedRequest  # noqa: E402
from experiments.services.tokens import create_token  # noqa: E402
from recommenders.models import Dataset  # noqa: E402

KEY = "bench-serving"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (default gthread, as "
                        "gunicorn.conf.py)")  # fmt: skip
    parser.add_argument("--worker-threads", type=int, default=8, help="threads per gthread worker (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--seconds", type=int, default=20, help="duration per endpoint (default 20)")
    parser.add_argument("--batch", type=int, default=1000, help="events per ingestion request (default 1000)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--keep", action="store_true", help="keep the events and served requests written")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Set DATABASE_URL=postgres://...: the benchmark measures the PostgreSQL set-up.")
    dataset = Dataset.objects.filter(name="online-retail").first()
    if dataset is None:
        sys.exit("Import the demo data first: manage.py import_dataset online-retail "
                 "data/online-retail/online_retail.csv.gz --name online-retail")  # fmt: skip
    users = list(dataset.interactions.values_list("user_id", flat=True).distinct()[:4339])
    secret = _prepare(dataset)
    first_event = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as scratch, _gunicorn(args) as server:
        serve_lua = Path(scratch) / "serve.lua"
        serve_lua.write_text(_serve_script(secret, users))
        path = f"/api/v1/experiments/{KEY}/recommendations"
        rows.append(("recommendations (k=10)", 1, *_wrk(args, serve_lua, path, server)))
        events_lua = Path(scratch) / "events.lua"
        events_lua.write_text(_events_script(secret, args.batch))
        name = f"events, batches of {args.batch:,}"
        rows.append((name, args.batch, *_wrk(args, events_lua, "/api/v1/events", server)))
    copy_rate = _raw_copy(args.batch * 200)
    print(f"\nServing and ingestion, gunicorn {args.workers} {args.worker_class} workers "
          f"x {args.worker_threads} threads, wrk {args.threads} threads "
          f"{args.connections} connections, {args.seconds} s each; {time.strftime('%Y-%m-%d %H:%M')} UTC; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'endpoint':<28}{'req/s':>10}{'items/s':>12}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'CPU ms/req: web':>17}{'db':>7}{'wrk':>7}{'req/s if alone':>16}")  # fmt: skip
    cores = os.cpu_count() or 1
    for name, per_request, rps, p50, p90, p99, errors, cpu in rows:
        alone = cores / (cpu.web + cpu.database) if cpu.web + cpu.database else 0.0
        print(f"{name:<28}{rps:>10,.0f}{rps * per_request:>12,.0f}{p50:>9.2f}{p90:>9.2f}{p99:>9.2f}{errors:>8}"
              f"{cpu.web * 1e3:>17.2f}{cpu.database * 1e3:>7.2f}{cpu.client * 1e3:>7.2f}{alone:>16,.0f}")  # fmt: skip
    print(f"{'raw COPY of event rows':<28}{'':>10}{copy_rate:>12,.0f}")
    print(
        "CPU ms/req: CPU time per request of the gunicorn processes (web), of this database's PostgreSQL backends "
        f"(db) and of wrk; 'req/s if alone' = {cores} cores / (web + db), the rate if nothing else ran."
    )
    if not args.keep:
        Event.objects.filter(id__gt=first_event).delete()
        ServedRequest.objects.filter(experiment__key=KEY, served_at__gte=_aware(started)).delete()


def _prepare(dataset: Dataset) -> str:
    arms = [("control", "retail-popularity", "popularity", {}), ("knn", "retail-item-knn", "item_knn", {})]
    bench_experiment(KEY, "Serving benchmark", dataset, arms)
    ApiToken.objects.filter(name="bench").delete()
    return create_token("bench", ["serve", "ingest"])[1]


class _gunicorn:
    def __init__(self, args: argparse.Namespace) -> None:
        self.port, self.workers = args.port, args.workers
        self.options = ["--worker-class", args.worker_class, "--threads", str(args.worker_threads)]

    def __enter__(self) -> _gunicorn:
        env = {**os.environ, "DJANGO_DEBUG": "false", "LOG_LEVEL": "WARNING"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "abplatform.wsgi", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(self.workers), *self.options, "--log-level", "warning"],
            cwd=REPO, env=env,
        )  # fmt: skip
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/accounts/login/", timeout=2)
                return self
            except OSError:
                time.sleep(0.5)
        self.process.kill()
        sys.exit("gunicorn did not start within 60 s")

    def pids(self) -> list[int]:
        """The master and its workers."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == self.process.pid:
                children.append(int(stat.parent.name))
        return [self.process.pid, *children]

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@dataclass(frozen=True)
class _Cpu:
    """CPU seconds per request spent by the web server, the database and the load generator."""

    web: float
    database: float
    client: float


def _wrk(
    args: argparse.Namespace, script: Path, path: str, server: _gunicorn
) -> tuple[float, float, float, float, int, _Cpu]:
    url = f"http://127.0.0.1:{args.port}{path}"
    # Warm-up: enough connections that every gunicorn worker loads the models before measuring.
    warm = ["wrk", "-t1", f"-c{args.workers * 2}", "-d3s", "-s", str(script), url]
    subprocess.run(warm, capture_output=True, check=True)
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--latency", "-s",
               str(script), url]  # fmt: skip
    web_before, database_before = _cpu_times(server.pids()), _cpu_times(_database_pids())
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    web, database = _cpu_since(web_before, server.pids()), _cpu_since(database_before, _database_pids())
    client = client_after.ru_utime + client_after.ru_stime - client_before.ru_utime - client_before.ru_stime
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    percentiles = {p: _ms(v) for p, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M)}
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    cpu = _Cpu(web / requests, database / requests, client / requests)
    return rps, percentiles["50"], percentiles["90"], percentiles["99"], errors, cpu


def _cpu_times(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process (all its threads), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    times = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    return times


def _cpu_since(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds the processes spent since `before` (processes started since count whole)."""
    return sum(now - before.get(pid, 0.0) for pid, now in _cpu_times(pids).items())


def _database_pids() -> list[int]:
    """The PostgreSQL backends connected to this database, but this script's (the server's connections)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _serve_script(secret: str, users: list[str]) -> str:
    return f"""
local users = {{{",".join(json.dumps(u) for u in users)}}}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {secret}"
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{{"user_id":"' .. users[(n % #users) + 1] .. '","k":10}}')
end
"""


def _events_script(secret: str, batch: int) -> str:
    # Each request sends `batch` new events: ids carry a per-thread random prefix and a counter.
    return f"""
local n = 0
local prefix = nil
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {secret}"
request = function()
  if prefix == nil then prefix = tostring(math.random(1, 1e9)) .. "-" .. tostring(os.clock()) end
  n = n + 1
  local parts = {{}}
  for i = 1, {batch} do
    parts[i] = '{{"event_id":"b' .. prefix .. '-' .. n .. '-' .. i .. '","type":"click","user_id":"' .. (12346 + i)
      .. '","item_id":"85123A","experiment":"{KEY}","timestamp":"2026-11-27T10:00:00Z"}}'
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(parts, ",") .. "]")
end
"""


def _raw_copy(rows: int) -> float:
    """Rows per second of COPY into a temporary copy of the events table (indexes included)."""
    table = Event._meta.db_table
    buffer = io.StringIO()
    for i in range(rows):
        buffer.write(f"raw-{uuid.uuid4().hex}-{i}\tclick\t{12346 + i % 4339}\t85123A\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t"
                     "2026-11-27 10:00:00+00\t2026-11-27 10:00:00+00\n")  # fmt: skip
    columns = (
        "event_id, type, user_id, item_id, request_id, experiment_id, arm_id, position, propensity, "
        "revenue, timestamp, received_at"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE bench_events (LIKE {table} INCLUDING ALL)")
        buffer.seek(0)
        started = time.perf_counter()
        cursor.cursor.copy_expert(f"COPY bench_events ({columns}) FROM STDIN", buffer)
        seconds = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_events")
    return rows / seconds


def _aware(epoch: float):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, tz=UTC)


if __name__ == "__main__":
    main()
