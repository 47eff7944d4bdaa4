from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.actors import Actor, ActorType, acting_as
from core.errors import ServiceError
from experiments.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key and print it (alone, on stdout). It is stored hashed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scopes", required=True, help="Comma-separated: assign,events,read,write or all."
        )
        parser.add_argument(
            "--rate-limit",
            type=int,
            default=None,
            help="Requests per second, shared by all web processes (default: no limit).",
        )

    def handle(
        self, *args: object, name: str, scopes: str, rate_limit: int | None, **options: object
    ) -> None:
        scope_list = [s.strip() for s in scopes.split(",") if s.strip()]
        try:
            with acting_as(Actor(ActorType.SYSTEM, "manage.py create_api_key")):
                _, raw_key = api_key_create(name=name, scopes=scope_list, rate_limit=rate_limit)
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(raw_key)
