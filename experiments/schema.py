"""OpenAPI description of the API key authentication (drf-spectacular extension).

Without it the schema has no security scheme: Swagger's "Authorize", generated clients and the
fuzz tests would not know to send `Authorization: Bearer <key>`, and `check --deploy` warns for
every view.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "experiments.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key, sent as `Authorization: Bearer <key>`. Create one in the admin or "
                "with `manage.py create_api_key --name NAME --scopes a,b`; each endpoint names "
                "the scope it needs (docs/api.md §3)."
            ),
        }
