"""Serving and ingestion throughput under a real HTTP server on loopback, measured with wrk.

For each server configuration, prints requests per second and latency percentiles (50/90/99 %) of

  * POST /api/v1/experiments/{key}/recommendations (k=10, user ids cycling through the data
    set's customers, so every request assigns an arm, recommends, and logs the served request,
    the exposure and 10 impressions);
  * POST /api/v1/events with batches of --batch events (events per second = requests x batch);
  * beside it, a raw PostgreSQL COPY of the same number of event rows into a scratch copy of the
    events table, right after: the physical limit of ingestion on this machine.

The configurations, measured in turn in one run (--rounds times, then a best / median summary):

  * the baseline: the code of git revision --baseline (default main, exported with git archive
    into a scratch directory) under gunicorn 2 gthread workers x 8 threads, main's settings;
  * this tree under granian (WSGI, --workers processes x --worker-threads blocking threads, as
    the Dockerfile runs it) and/or gunicorn gthread with the same counts (--server).

It needs PostgreSQL (DATABASE_URL=postgres://...), the Online Retail data set imported as
`online-retail`, and wrk (apt-get install wrk). It registers and trains two small variants
(retail-popularity and retail-item-knn, if missing), creates and starts the experiment
`bench-serving`, creates an API token, and for each configuration starts the server on
127.0.0.1:--port, warms it up, runs wrk for --seconds per endpoint with --connections
connections, and stops it.

On a shared machine the rates follow the other load, so it also reports the CPU time per
request of the server's processes, of the database's backends and of wrk (from /proc), and
the rate the two server sides would reach with every core to themselves.
Events and served requests it writes are deleted at the end (--keep to keep them).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/abplatform nice -n 10 python bench/serving.py --rounds 3
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import statistics
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

from recommenders.models import Dataset  # noqa: E402
from serving.models import ApiToken, Event, ServedRequest  # noqa: E402
from serving.services.tokens import create_token  # noqa: E402

KEY = "bench-serving"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=["granian", "gunicorn", "both"], default="granian",
                        help="this tree's server(s) to measure (default granian, as scripts/web.sh)")  # fmt: skip
    parser.add_argument("--baseline", default="main", help="git revision whose code and gunicorn settings run "
                        "beside, exported with git archive (default main; 'none' to skip)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    parser.add_argument("--worker-threads", type=int, default=2, help="threads per worker (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="measure every configuration this many times, "
                        "in turn (default 1)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--think-ms", type=float, default=0.0,
                        help="recommendations only: each connection waits this long between its requests "
                        "(default 0: as fast as possible). With C connections the offered rate is about "
                        "C x 1000 / (think + latency) requests/s, e.g. 32 connections and 20 ms give about "
                        "1,500/s: the latency at that load rather than at saturation. A closed loop: a stalled "
                        "connection sends nothing while it waits, so the tail is slightly understated.")  # fmt: skip
    parser.add_argument("--seconds", type=int, default=20, help="duration per endpoint (default 20)")
    parser.add_argument("--batch", type=int, default=1000, help="events per ingestion request (default 1000)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--keep", action="store_true", help="keep the events and served requests written")
    args = parser.parse_args()
    dataset = Dataset.objects.filter(name="online-retail").first()
    if dataset is None:
        sys.exit("Import the demo data first: manage.py import_dataset online-retail "
                 "data/online-retail/online_retail.csv.gz --name online-retail")  # fmt: skip
    users = list(dataset.interactions.values_list("user_id", flat=True).distinct()[:4339])
    secret = _prepare(dataset)
    first_event = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    started = time.time()
    results: list[_Result] = []
    with tempfile.TemporaryDirectory() as scratch:
        baseline_tree = None if args.baseline == "none" else _export(args.baseline, Path(scratch) / "baseline")
        serve_lua, events_lua = Path(scratch) / "serve.lua", Path(scratch) / "events.lua"
        serve_lua.write_text(_serve_script(secret, users, args.think_ms))
        events_lua.write_text(_events_script(secret, args.batch))
        setups = _setups(args, baseline_tree)
        for round_ in range(1, args.rounds + 1):
            for setup in setups:
                load = os.getloadavg()[0]
                with _Server(setup, args.port) as server:
                    serving = _wrk(args, serve_lua, f"/api/v1/experiments/{KEY}/recommendations", server)
                    ingestion = _wrk(args, events_lua, "/api/v1/events", server)
                results.append(_Result(round_, setup.label, load, serving, ingestion, _raw_copy(args.batch * 200)))
                _print_round(results[-1], args.batch)
    _print_summary(args, setups, results)
    if not args.keep:
        Event.objects.filter(id__gt=first_event).delete()
        ServedRequest.objects.filter(experiment__key=KEY, served_at__gte=_aware(started)).delete()


def _export(revision: str, target: Path) -> Path:
    """The source tree of `revision` in `target` (git archive: reads the repository, changes nothing)."""
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


@dataclass(frozen=True)
class _Run:
    """One wrk run: requests per second, latency percentiles in ms, non-2xx answers, CPU per request."""

    rps: float
    p50: float
    p90: float
    p99: float
    errors: int
    cpu: _Cpu


@dataclass(frozen=True)
class _Result:
    round: int
    label: str
    load: float  # 1-minute load average when the configuration started
    serving: _Run
    ingestion: _Run
    copy_rate: float  # raw COPY rows per second, right after


def _print_round(result: _Result, batch: int) -> None:
    cores = os.cpu_count() or 1
    print(f"\nround {result.round}, {result.label}; {time.strftime('%H:%M')} UTC, load average "
          f"{result.load:.2f} -> {os.getloadavg()[0]:.2f} on {cores} cores")  # fmt: skip
    print(f"{'endpoint':<28}{'req/s':>10}{'items/s':>12}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'CPU ms/req: web':>17}{'db':>7}{'wrk':>7}{'req/s if alone':>16}")  # fmt: skip
    for name, per_request, run in (("recommendations (k=10)", 1, result.serving),
                                   (f"events, batches of {batch:,}", batch, result.ingestion)):  # fmt: skip
        cpu = run.cpu
        alone = cores / (cpu.web + cpu.database) if cpu.web + cpu.database else 0.0
        print(f"{name:<28}{run.rps:>10,.0f}{run.rps * per_request:>12,.0f}{run.p50:>9.2f}{run.p90:>9.2f}"
              f"{run.p99:>9.2f}{run.errors:>8}{cpu.web * 1e3:>17.2f}{cpu.database * 1e3:>7.2f}"
              f"{cpu.client * 1e3:>7.2f}{alone:>16,.0f}")  # fmt: skip
    print(f"{'raw COPY of event rows':<28}{'':>10}{result.copy_rate:>12,.0f}")


def _print_summary(args: argparse.Namespace, setups: list[_Setup], results: list[_Result]) -> None:
    """Per configuration, the best and the median over the rounds (the machine's noise is in the spread)."""
    print(
        f"\nSummary over {args.rounds} round(s), wrk {args.threads} threads {args.connections} connections"
        f"{f' (recommendations with {args.think_ms:g} ms think time)' if args.think_ms else ''}, "
        f"{args.seconds} s per endpoint; {time.strftime('%Y-%m-%d %H:%M')} UTC; "
        f"load average at the starts {min(r.load for r in results):.2f}-{max(r.load for r in results):.2f}"
    )
    print(f"{'configuration':<34}{'req/s best':>11}{'median':>8}{'p99 ms best':>12}{'median':>8}"
          f"{'events/s best':>14}{'median':>8}{'/ COPY best':>12}{'median':>8}")  # fmt: skip
    for setup in setups:
        mine = [r for r in results if r.label == setup.label]
        rps = [r.serving.rps for r in mine]
        p99 = [r.serving.p99 for r in mine]
        events = [r.ingestion.rps * args.batch for r in mine]
        share = [r.ingestion.rps * args.batch / r.copy_rate for r in mine]
        print(f"{setup.label:<34}{max(rps):>11,.0f}{statistics.median(rps):>8,.0f}{min(p99):>12.1f}"
              f"{statistics.median(p99):>8.1f}{max(events):>14,.0f}{statistics.median(events):>8,.0f}"
              f"{max(share):>12.0%}{statistics.median(share):>8.0%}")  # fmt: skip
    print(
        "CPU ms/req: CPU time per request of the server's processes (web), of this database's PostgreSQL "
        "backends (db) and of wrk; 'req/s if alone' = cores / (web + db), the rate if nothing else ran."
    )


def _prepare(dataset: Dataset) -> str:
    arms = [("control", "retail-popularity", "popularity", {}), ("knn", "retail-item-knn", "item_knn", {})]
    bench_experiment(KEY, "Serving benchmark", dataset, arms)
    ApiToken.objects.filter(name="bench").delete()
    return create_token("bench", ["serve", "ingest"])[1]


@dataclass(frozen=True)
class _Setup:
    """One server configuration: its label, the command starting it, and the source tree it serves."""

    label: str
    command: list[str]
    tree: Path


def _setups(args: argparse.Namespace, baseline_tree: Path | None) -> list[_Setup]:
    bind = ["--bind", f"127.0.0.1:{args.port}"]
    gunicorn = [sys.executable, "-m", "gunicorn", "abplatform.wsgi", *bind, "--log-level", "warning"]
    setups = []
    if baseline_tree is not None:  # main's configuration: its code, its gunicorn.conf.py, 2 gthread x 8
        command = [*gunicorn, "--workers", "2", "--threads", "8"]
        setups.append(_Setup(f"{args.baseline} gunicorn 2 gthread x 8", command, baseline_tree))
    threads = str(args.worker_threads)
    if args.server in ("gunicorn", "both"):
        command = [*gunicorn, "--workers", str(args.workers), "--threads", threads]
        setups.append(_Setup(f"gunicorn {args.workers} gthread x {threads}", command, REPO))
    if args.server in ("granian", "both"):
        command = [sys.executable, "-m", "granian", "--interface", "wsgi", "abplatform.wsgi:application",
                   "--host", "127.0.0.1", "--port", str(args.port), "--workers", str(args.workers),
                   "--blocking-threads", threads, "--log-level", "warning"]  # fmt: skip
        setups.append(_Setup(f"granian {args.workers} x {threads} threads", command, REPO))
    return setups


class _Server:
    """A running server of one _Setup (started and stopped as a context manager)."""

    def __init__(self, setup: _Setup, port: int) -> None:
        self.setup, self.port = setup, port

    def __enter__(self) -> _Server:
        env = {**os.environ, "DJANGO_DEBUG": "false", "LOG_LEVEL": "WARNING", "PYTHONDONTWRITEBYTECODE": "1"}
        self.process = subprocess.Popen(self.setup.command, cwd=self.setup.tree, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/accounts/login/", timeout=2)
                return self
            except OSError:
                time.sleep(0.5)
        self.process.kill()
        sys.exit(f"{self.setup.label} did not start within 60 s")

    def pids(self) -> list[int]:
        """The server's process and all its descendants (workers)."""
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
        family, grew = {self.process.pid}, True
        while grew:
            found = {pid for pid, parent in parents.items() if parent in family} - family
            family |= found
            grew = bool(found)
        return sorted(family)

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@dataclass(frozen=True)
class _Cpu:
    """CPU seconds per request spent by the web server, the database and the load generator."""

    web: float
    database: float
    client: float


def _wrk(args: argparse.Namespace, script: Path, path: str, server: _Server) -> _Run:
    url = f"http://127.0.0.1:{args.port}{path}"
    # Warm-up: enough connections that every worker loads the models before measuring.
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
    return _Run(rps, percentiles["50"], percentiles["90"], percentiles["99"], errors, cpu)


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


def _serve_script(secret: str, users: list[str], think_ms: float = 0.0) -> str:
    pause = f"delay = function() return {think_ms:g} end" if think_ms > 0 else ""
    return f"""{pause}
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
