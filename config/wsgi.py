import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()


def freeze_startup_objects() -> None:
    """Move everything the process holds after start-up (some 200,000 objects: modules, settings, the
    URLconf and every view) out of the garbage collector's sight. They live as long as the process, yet
    each full collection walked them all: a request that builds a large document (an as-of attestation
    at 500 products keeps ~20,000 containers alive) triggered one every few requests, 100-200 ms on a
    loaded machine, which was most of that endpoint's p99. Collections still run; they only skip these."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 -- imports the URLconf and the views now, not on a first request
    gc.collect()
    gc.freeze()


freeze_startup_objects()
