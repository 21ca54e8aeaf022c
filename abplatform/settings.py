"""Django settings, read from environment variables only (see .env.example).

The defaults are the embedded set-up that needs no server: a PostgreSQL installed by pip, with
its data in `var/postgres`, and a Celery broker on kombu's filesystem transport. Production
(`ABPLATFORM_ENV=production`) turns DEBUG off, requires a SECRET_KEY and ALLOWED_HOSTS, and
secures cookies and HTTPS.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from abplatform import embedded_postgres

# Every variable is read through its declaration in abplatform.env (kind, allowed values, fixed default,
# meaning), from which the documentation's Settings page is generated.
from abplatform.env import VARIABLES as env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.text("ABPLATFORM_VAR_DIR", str(BASE_DIR / "var")))

ENVIRONMENT = env.choice("ABPLATFORM_ENV")
PRODUCTION = ENVIRONMENT == "production"

if PRODUCTION:
    SECRET_KEY = env.text("DJANGO_SECRET_KEY")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 50 characters with 5 distinct ones.")
else:
    SECRET_KEY = env.text("DJANGO_SECRET_KEY", "development-only-insecure-key-do-not-use-in-production")

DEBUG = env.boolean("DJANGO_DEBUG", not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG=true is refused when ABPLATFORM_ENV=production.")

ALLOWED_HOSTS = env.text_list("DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("Set DJANGO_ALLOWED_HOSTS (comma-separated host names) in production.")
CSRF_TRUSTED_ORIGINS = env.text_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's JavaScript and CSS as static files, so /api/docs/ works without a CDN.
    "drf_spectacular_sidecar",
    "django_celery_results",
    # Login lockout after repeated wrong passwords (AXES_* below).
    "axes",
    "core",
    "accounts",
    "recommenders",
    "experiments",
    "serving",
    "analysis",
    "simulation",
    "offpolicy",
    "ops",
]

MIDDLEWARE = [
    # First: the request id (X-Request-ID, on every log line of the request), the request metrics, and
    # /healthz, /readyz, /metrics answered before the host check and the HTTPS redirect (probes and
    # scrapers use the machine's address and plain HTTP).
    "ops.middleware.OpsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves collected static files (Plotly's bundle included) from gunicorn, with far-future caching.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The Content-Security-Policy header (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    "abplatform.middleware.QueueUnavailableMiddleware",
    # Last, as django-axes requires: answers a locked-out login with abplatform.lockout's 429.
    "axes.middleware.AxesMiddleware",
]

# Content-Security-Policy (django-csp): scripts, images, fonts and fetches from this server only, and no
# inline script or handler (the pages' JavaScript is in static/). Styles allow 'unsafe-inline': plotly.js
# and Swagger UI insert <style> elements, and a few templates set a style attribute. Pages may not be framed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Password guessing: after AXES_FAILURE_LIMIT wrong passwords for one username from one address, that
# pair is locked for AXES_COOLOFF_TIME (429 with Retry-After, abplatform/lockout.py); a success resets it.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.integer("ABPLATFORM_LOGIN_FAILURE_LIMIT")
AXES_COOLOFF_TIME = timedelta(minutes=env.integer("ABPLATFORM_LOGIN_COOLOFF_MINUTES"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "abplatform.lockout.lockout_response"
AXES_VERBOSE = False

ROOT_URLCONF = "abplatform.urls"
WSGI_APPLICATION = "abplatform.wsgi.application"
ASGI_APPLICATION = "abplatform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # The navigation's alert badge (a count, taken only when a page shows it).
                "ops.context_processors.alerts",
            ],
        },
    },
]

# PostgreSQL only: the server DATABASE_URL names, else the embedded one in var/postgres, started
# on first use and shared by every process of the checkout (abplatform/embedded_postgres.py).
DATABASES = {"default": env.database("DATABASE_URL") or embedded_postgres.django_database(VAR_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.text("DJANGO_TIME_ZONE")
USE_I18N = True
USE_TZ = True

# Trained models (one file per training run, with its sha256 recorded in the database).
ARTIFACT_DIR = Path(env.text("ABPLATFORM_ARTIFACT_DIR", str(VAR_DIR / "artifacts")))
# Dotted paths of extra recommender classes, e.g. "mypackage.recs.MyRecommender".
EXTRA_ALGORITHMS = env.text_list("ABPLATFORM_EXTRA_ALGORITHMS")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "abplatform.staticfinders.PlotlyFinder",  # static/plotly/plotly.min.js from the plotly package
]
STATIC_ROOT = Path(env.text("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))

# Security: everything `manage.py check --deploy` asks for, on in production.
SESSION_COOKIE_SECURE = env.boolean("DJANGO_SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.boolean("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env.integer("DJANGO_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env.boolean("DJANGO_HSTS_PRELOAD", PRODUCTION)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.boolean("DJANGO_BEHIND_PROXY") else None
X_FRAME_OPTIONS = "DENY"

# An event batch of 10,000 events is about 2-3 MB of JSON; larger bodies get a 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # People use the API with their session (and its CSRF check); programs with API tokens
        # (serving.authentication). No Basic auth: it would let a password be guessed request by request.
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, with a nesting limit (core/parsers.py); forms and multipart for the browsable API.
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "EXCEPTION_HANDLER": "core.api_errors.api_exception_handler",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "abplatform API",
    "DESCRIPTION": "Recommender variants, training, offline evaluation and experiments.",
    "VERSION": "1",
    # Several models have a `status` with different choices; name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "recommenders.models.BackgroundJob.Status",
        "VariantStatusEnum": "recommenders.models.Variant.Status",
        "ExperimentStatusEnum": "experiments.models.Experiment.Status",
    },
    # /api/docs/ (Swagger UI) and /api/redoc/ (Redoc) load drf-spectacular-sidecar's static files, never a CDN;
    # the Redoc page's template (templates/api/redoc.html) also leaves out drf-spectacular's Google Fonts links.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery. The default broker is kombu's filesystem transport: a real broker with a real
# worker process, needing no server. Redis (or RabbitMQ) is one variable away.
CELERY_BROKER_URL = env.text("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = env.text("CELERY_RESULT_BACKEND")
CELERY_BROKER_DIR = VAR_DIR / "celery-broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_DIR.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(CELERY_BROKER_DIR),
        "data_folder_out": str(CELERY_BROKER_DIR),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
    (CELERY_BROKER_DIR / "control").mkdir(exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TRACK_STARTED = True
CELERY_TIMEZONE = TIME_ZONE
# Long training must not be handed to a second worker while the first still runs it:
# one message at a time per worker process, acknowledged after the work (acks_late).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Panels other apps add to the variant page: dotted paths of callables (request, variant) -> HTML or
# None, resolved by recommenders.pages with import_string, so `recommenders` never imports them.
VARIANT_PAGE_PANELS = ["offpolicy.panels.predicted_ctr_panel"]
# The same for the experiment page: callables (request, experiment) -> HTML or None, shown in order
# after the arms, so `experiments` never imports the apps above it.
EXPERIMENT_PAGE_PANELS = [
    "ops.pages.alerts_panel",
    "analysis.pages.bandit_weights_panel",
    "simulation.pages.simulation_panel",
]
# Called with the experiment's id after `manage.py import_events` stored a log (dotted paths, so the import, in
# analysis, calls up into ops without importing it): the alert rules look at the imported experiment once.
EVENTS_IMPORTED_HOOKS = ["ops.tasks.evaluate_imported"]

CELERY_TASK_ROUTES = {
    "recommenders.tasks.train_variant_task": {"queue": "training"},
    "recommenders.tasks.evaluate_variant_task": {"queue": "training"},
    "simulation.tasks.simulate_task": {"queue": "training"},
    # It loads and scores a trained model, like training.
    "offpolicy.tasks.estimate_ctr_task": {"queue": "training"},
}

# Periodic work (run `celery -A abplatform beat` next to the workers).
# Background jobs (core.jobs): a running job's worker beats every JOB_HEARTBEAT_SECONDS; one silent for
# JOB_STALE_SECONDS is presumed dead and restarted by the next free worker.
JOB_HEARTBEAT_SECONDS = env.integer("ABPLATFORM_JOB_HEARTBEAT_SECONDS")
JOB_STALE_SECONDS = env.integer("ABPLATFORM_JOB_STALE_SECONDS")
if JOB_STALE_SECONDS <= 2 * JOB_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("ABPLATFORM_JOB_STALE_SECONDS must exceed twice ABPLATFORM_JOB_HEARTBEAT_SECONDS.")
CELERY_BEAT_SCHEDULE = {
    "fold-rollups": {"task": "analysis.tasks.fold_rollups_task", "schedule": 30.0, "options": {"expires": 25}},
    # Checks each running bandit's own update interval (bandit_update_minutes) every minute.
    "update-bandits": {"task": "analysis.tasks.update_bandits_task", "schedule": 60.0, "options": {"expires": 55}},
    # Jobs whose worker died (no heartbeat for core.jobs.STALE) are put back and re-sent.
    "recover-stale-jobs": {"task": "core.tasks.recover_stale_jobs_task", "schedule": 60.0, "options": {"expires": 55}},
    # The alert rules on every running experiment; new alerts are delivered to their channels (docs/operations.md).
    "evaluate-alerts": {"task": "ops.tasks.evaluate_alerts_task", "schedule": 60.0, "options": {"expires": 55}},
}

# Operations (ops/): health checks, metrics, logs, errors. See docs/operations.md.
# Prometheus metrics are added up over the web processes from files in this folder (prometheus_client's
# multiprocess mode reads the variable, so it is set for every process here); the web server's start empties it.
METRICS_DIR = Path(env.text("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus")))
METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
# Who may scrape /metrics: a request with this bearer token, or from one of these networks (default loopback).
METRICS_TOKEN = env.text("ABPLATFORM_METRICS_TOKEN")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("ABPLATFORM_METRICS_TOKEN must be at least 16 characters (or unset).")
METRICS_ALLOW = env.networks("ABPLATFORM_METRICS_ALLOW")
# Each Celery worker writes a heartbeat row every WORKER_HEARTBEAT_SECONDS (ops.worker); /readyz wants a live
# one (beat within 3 intervals) for each of READY_WORKER_QUEUES, and the rollups at most this far behind.
WORKER_HEARTBEAT_SECONDS = env.integer("ABPLATFORM_WORKER_HEARTBEAT_SECONDS")
READY_WORKER_QUEUES = env.text_list("ABPLATFORM_READY_WORKER_QUEUES")
READY_MAX_ROLLUP_LAG_SECONDS = env.integer("ABPLATFORM_READY_MAX_ROLLUP_LAG_SECONDS")
# Alerts (ops.services.alerts): a running experiment with no event for this many minutes opens `no_events`.
ALERT_NO_EVENTS_MINUTES = env.integer("ABPLATFORM_ALERT_NO_EVENTS_MINUTES")

# Logs: JSON lines in production, readable text in development; each line carries the request id ("-" outside
# a request). Celery's workers use this configuration too (abplatform/celery.py).
LOG_FORMAT = env.choice("ABPLATFORM_LOG_FORMAT", "json" if PRODUCTION else "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.request_context.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "ops.log_format.json_formatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}},
    "loggers": {
        # Django's own console handlers (DEFAULT_LOGGING) would print its lines a second time, unformatted.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        "py.warnings": {"handlers": [], "propagate": True},  # Python's warnings, as log lines
    },
    "root": {"handlers": ["console"], "level": env.choice("LOG_LEVEL")},
}

# Errors to Sentry, only when SENTRY_DSN is set (sentry-sdk is not even imported otherwise). Its Django, Celery,
# Redis and logging integrations turn on by themselves; no personal data is sent.
SENTRY_DSN = env.text("SENTRY_DSN")
if SENTRY_DSN:
    import sentry_sdk

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=env.text("SENTRY_ENVIRONMENT", ENVIRONMENT),
        traces_sample_rate=env.number("SENTRY_TRACES_SAMPLE_RATE"),
        send_default_pii=False,
    )
