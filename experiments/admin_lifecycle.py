"""The experiment's life cycle as the admin shows it: the bar of steps, what each status move
does to traffic (the confirmation pages) and the plain-language message once it is done.

Pure functions of an experiment's stored fields: no queries, no writes (the moves themselves
go through `experiments.services`, as from the API).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# "archived" is compared as a value, not `Status.ARCHIVED`: the bar shows the step whether or
# not this version of the models has the status yet (docs/api.md §13 adds it).
ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class Step:
    key: str
    label: str
    state: str  # "done" | "current" | "todo" | "skipped"
    note: str = ""


def lifecycle_steps(experiment: Any) -> list[Step]:
    """draft → running ⇄ paused → stopped/shipped → archived, with the current one marked.

    Paused is a side branch of running (it can go back), so a running experiment that was never
    paused shows paused as "todo" and one that resumed shows running as current again.
    """
    status = experiment.status
    shipped = getattr(experiment, "shipped_variant", "") or ""
    order = ["draft", "running", "paused", "ended", ARCHIVED]
    current = {"stopped": "ended"}.get(status, status)
    position = order.index(current) if current in order else 0
    end_label = f"Shipped: {shipped}" if shipped else "Stopped"
    if status not in ("stopped", ARCHIVED):
        end_label = "Stopped / shipped"
    labels = {
        "draft": "Draft",
        "running": "Running",
        "paused": "Paused",
        "ended": end_label,
        ARCHIVED: "Archived",
    }
    notes = {
        "draft": "being set up; nobody is assigned",
        "running": "units are split between the variants",
        "paused": "everyone gets the control (kill switch)",
        "ended": (
            f"everyone gets {shipped}"
            if shipped
            else "everyone gets the control; results frozen"
            if status in ("stopped", ARCHIVED)
            else "everyone gets the control, or the variant you ship"
        ),
        ARCHIVED: "no longer served",
    }
    steps = []
    for index, key in enumerate(order):
        if index == position:
            state = "current"
        elif index < position:
            # A running experiment that ended without a pause skipped that step.
            state = "skipped" if key == "paused" and status != "paused" else "done"
        else:
            state = "todo"
        if key == "running" and status == "paused":
            state = "done"
        steps.append(Step(key, labels[key], state, notes[key]))
    return steps


@dataclass(frozen=True, slots=True)
class MoveText:
    title: str
    button: str
    traffic: str  # what happens to traffic, for the confirmation page
    done: str  # the message once done; {name} and {variant} are filled in


MOVES: dict[str, MoveText] = {
    "start": MoveText(
        title="Start “{name}”?",
        button="Yes, start it",
        traffic=(
            "From now on, units that match the targeting are split between the variants by "
            "their weights and see the variant they are assigned; exposures are counted and "
            "the analysis starts. The key, seed, layer and the variants' weights are then "
            "frozen, so no unit ever changes variant."
        ),
        done="“{name}” is running: units are now split between its variants.",
    ),
    "resume": MoveText(
        title="Resume “{name}”?",
        button="Yes, resume it",
        traffic=(
            "Units go back to the variant they had before the pause (assignment is "
            "deterministic); new units are split by the same weights."
        ),
        done="“{name}” is running again: units get their variants back.",
    ),
    "pause": MoveText(
        title="Pause “{name}”?",
        button="Yes, pause it",
        traffic=(
            "Every unit gets the control from now on (the kill switch); no exposures are "
            "counted while paused. Resuming gives every unit its variant back."
        ),
        done="“{name}” is paused: everyone gets the control until you resume it.",
    ),
    "stop": MoveText(
        title="Stop “{name}” without shipping?",
        button="Yes, stop it",
        traffic=(
            "Every unit gets the control from now on and the results are frozen. This is "
            "final: a stopped experiment cannot be restarted."
        ),
        done="“{name}” is stopped: everyone gets the control and the results are final.",
    ),
    "ship": MoveText(
        title="Stop “{name}” and ship {variant}?",
        button="Yes, stop and ship {variant}",
        traffic=(
            "Every unit gets {variant} from now on, whatever variant it had, until the "
            "experiment is archived; no exposures are counted. The results are frozen and the "
            "experiment cannot be restarted."
        ),
        done="“{name}” is stopped and {variant} is shipped: everyone now gets {variant}.",
    ),
    "archive": MoveText(
        title="Archive “{name}”?",
        button="Yes, archive it",
        traffic=(
            "It is no longer served: /assign, /config and /features leave it out, so apps "
            "fall back to their own default (a shipped variant stops being served too). The "
            "results stay readable. This is final."
        ),
        done="“{name}” is archived: it is no longer served.",
    ),
    "rollback": MoveText(
        title="Roll back {variant} in “{name}”?",
        button="Yes, roll back {variant}",
        traffic=(
            "Units assigned to {variant} get the control from now on; every other unit keeps "
            "its variant and the experiment keeps running. Units exposed before stay in the "
            "results. This cannot be undone for this experiment."
        ),
        done="Rolled back {variant} in “{name}”: its units now get the control.",
    ),
}


def move_text(move: str, *, name: str, variant: str = "") -> dict[str, str]:
    """The texts of one move, filled in; KeyError for an unknown move."""
    text = MOVES[move]
    values = {"name": name, "variant": variant}
    return {
        "title": text.title.format(**values),
        "button": text.button.format(**values),
        "traffic": text.traffic.format(**values),
        "done": text.done.format(**values),
    }


# The assignment reasons of docs/api.md §2 / §5 in words, for the preview (codes stay beside them).
ASSIGNMENT_REASON_TEXT = {
    "assigned": "assigned by the hash, as every unit in the experiment",
    "forced": "a QA override (forced assignment); never analysed",
    "not_targeted": "the attributes do not match the targeting condition, so it gets the control",
    "not_in_layer": "the unit falls outside this experiment's share of the layer",
    "not_in_traffic": "the unit falls outside the coverage, so it gets the control",
    "not_running": "the experiment is not running, so everyone gets the control",
    "shipped": "the experiment shipped this variant to everyone",
    "rolled_back": "its variant was rolled back, so it gets the control",
    "fallback": "the client's fallback (Variantlab could not be reached)",
}


def assignment_reason_text(code: str) -> str:
    return ASSIGNMENT_REASON_TEXT.get(code, code.replace("_", " "))
