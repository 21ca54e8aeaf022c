#!/usr/bin/env bash
# Run a Celery worker and the web server together; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
ADDRESS=${ABPLATFORM_ADDRESS:-127.0.0.1:8000}

# The metric files of a previous run go before any process of this one counts (docs/operations.md).
"$VENV/bin/python" manage.py clear_metrics

# Background jobs of a script ignore Ctrl-C, so the worker is stopped explicitly on exit.
# -B runs the beat scheduler inside the worker (one process for the demo), so rollups fold every 30 s.
"$VENV/bin/celery" -A abplatform worker -B -Q default,training --concurrency 1 --loglevel INFO \
  --schedule var/celerybeat-schedule &
worker=$!
trap 'echo "Stopping the worker..."; kill -TERM "$worker" 2>/dev/null; wait "$worker" 2>/dev/null; exit 0' INT TERM EXIT

echo "Web server on http://$ADDRESS (Ctrl-C stops the web server and the worker)"
"$VENV/bin/python" manage.py runserver "$ADDRESS" --noreload
