import json

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


def bare(request: HttpRequest) -> JsonResponse:
    """GET /bare: a JSON answer and nothing else."""
    return JsonResponse({"ok": 1})


@csrf_exempt
def bare_post(request: HttpRequest) -> JsonResponse:
    """POST /bare_post: the same, after parsing the JSON body."""
    body = json.loads(request.body)
    return JsonResponse({"ok": 1, "n": len(body)})


urlpatterns = [path("bare", bare), path("bare_post", bare_post)]
