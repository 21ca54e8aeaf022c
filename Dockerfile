# One image for web, worker and beat (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --create-home app && mkdir -p /app/var && chown -R app /app/var
USER app

EXPOSE 8000
# granian (Rust HTTP) serves the WSGI app with less CPU per request than gunicorn (bench/serving.py;
# CHANGELOG.md, 2026-11-28); 2 blocking threads per worker overlap one request's database wait with another's work.
# The metric files of the previous run are removed first (the web processes add up their metrics in var/prometheus).
CMD ["sh", "-c", "python manage.py clear_metrics && exec granian --interface wsgi abplatform.wsgi:application \
     --host 0.0.0.0 --port 8000 --workers 3 --blocking-threads 2"]
