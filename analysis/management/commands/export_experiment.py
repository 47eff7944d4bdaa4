import codecs
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.exports import FORMATS, LEVELS, export_stream, export_table
from core.errors import ServiceError
from experiments.models import Experiment


class Command(BaseCommand):
    help = (
        "Export an experiment (summary, units or events) as CSV, JSON or Parquet, streamed "
        "with flat memory. --output - writes CSV or JSON to stdout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("--level", required=True, choices=LEVELS)
        parser.add_argument(
            "--output", default="-", help="File to write, or - for stdout (CSV and JSON only)."
        )

    def handle(self, *args: object, key: str, fmt: str, level: str, output: str, **_: object):
        experiment = Experiment.objects.filter(key=key).first()
        if experiment is None:
            raise CommandError(f"No experiment '{key}'.")
        if output == "-" and fmt == "parquet":
            raise CommandError("Parquet is binary: give a file with --output PATH.")
        try:
            table = export_table(experiment=experiment, level=level)
        except ServiceError as error:
            raise CommandError(error.message) from error
        chunks = export_stream(table, fmt)
        if output == "-":
            # Through self.stdout (text), so call_command(stdout=...) captures it; a chunk may
            # end inside a UTF-8 character, hence the incremental decoder.
            decoder = codecs.getincrementaldecoder("utf-8")()
            for chunk in chunks:
                self.stdout.write(decoder.decode(chunk), ending="")
            self.stdout.write(decoder.decode(b"", final=True), ending="")
            self.stdout.flush()
            return
        # Written beside the target and renamed at the end: a failed export leaves no
        # truncated file under the requested name.
        target = Path(output)
        partial = target.with_name(f".{target.name}.partial")
        try:
            with partial.open("wb") as file:
                for chunk in chunks:
                    file.write(chunk)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        self.stderr.write(f"Exported the {level} of {key} as {fmt} to {target}.")
