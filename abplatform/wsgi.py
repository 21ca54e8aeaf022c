"""WSGI entry point: `granian --interface wsgi abplatform.wsgi:application` (the image's server)
or `gunicorn abplatform.wsgi` (gunicorn.conf.py).

The two hot endpoints (recommendations, event batches) are answered by the lean path in
front of Django (serving/lean.py); everything else goes through Django as usual.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")
django_application = get_wsgi_application()

from serving.lean import LeanDispatcher  # noqa: E402  (needs the apps loaded by get_wsgi_application)

application = LeanDispatcher(django_application)

# Tail latency: a full (generation 2) garbage collection walks every container object of the
# process (Django, the loaded models, the remembered top lists) and stalls the request that
# triggers it. Move what start-up created out of the collector's reach and collect the young
# generation less often; serving allocates few reference cycles, so little is left uncollected.
import gc  # noqa: E402

gc.freeze()
gc.set_threshold(50_000, 20, 100)
