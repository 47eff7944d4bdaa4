"""URLs of the benchmark's baseline server: the product's URLs plus one bare JSON view.

Only `benchmarks/bare_wsgi.py` selects this module; the product's `config.urls` is untouched.
"""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as product_urlpatterns

BARE_PATH = "bench/bare"


@csrf_exempt
def bare_json(request: HttpRequest) -> JsonResponse:
    """The cheapest Django JSON answer: no auth, no parsing, no DRF; the same middleware."""
    return JsonResponse({"ok": True})


urlpatterns = [path(BARE_PATH, bare_json, name="bench-bare"), *product_urlpatterns]
