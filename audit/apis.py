"""GET /api/v1/audit (docs/api.md §11): read-only; there is no endpoint that writes entries."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.selectors import audit_json, audit_list


class ActorOutput(serializers.Serializer):
    type = serializers.ChoiceField(choices=["user", "api_key", "system"])
    name = serializers.CharField()


class ObjectOutput(serializers.Serializer):
    type = serializers.CharField()
    key = serializers.CharField()


class AuditEntryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor = ActorOutput()
    action = serializers.CharField()
    object = ObjectOutput()
    changes = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2)
    )
    reason = serializers.CharField(allow_blank=True)


class AuditQuery(serializers.Serializer):
    experiment = serializers.CharField(max_length=100, required=False)
    since = serializers.DateTimeField(required=False)
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)


class AuditListApi(APIView):
    """Who changed what, when and why (docs/api.md §11), newest first. Read-only: no
    endpoint writes entries."""

    required_scopes = "read"

    @extend_schema(parameters=[AuditQuery], responses=AuditEntryOutput(many=True))
    def get(self, request: Request) -> Response:
        query = AuditQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        entries = audit_list(**query.validated_data)
        return Response(AuditEntryOutput([audit_json(e) for e in entries], many=True).data)
