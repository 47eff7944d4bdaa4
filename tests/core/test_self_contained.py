"""The repository needs nothing outside itself: no file points at the specification folder that
sat beside the checkout while Variantlab was built (its text now lives in docs/api.md)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache"}
TEXT_SUFFIXES = {".py", ".md", ".html", ".txt", ".toml", ".cfg", ".ini", ".yml", ".yaml", ".sh"}
TEXT_NAMES = {"Makefile", "run", "Dockerfile", "Procfile"}
# Written in pieces so this file does not match itself.
OUTSIDE_REFERENCES = (
    "../" + "shared",
    "shared/" + "CONTRACT",
    "CONTRACT" + ".md",
    "CONTRACT" + " §",
)


def outside_references(root: Path) -> list[str]:
    """`path:line: text` of each line under `root` that refers to a file outside the repository."""
    found = []
    stack = [root]
    while stack:
        folder = stack.pop()
        for path in sorted(folder.iterdir()):
            if path.is_dir():
                if path.name not in SKIPPED_DIRS and not path.name.startswith(".pytest"):
                    stack.append(path)
                continue
            if path.suffix not in TEXT_SUFFIXES and path.name not in TEXT_NAMES:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), start=1):
                if any(reference in line for reference in OUTSIDE_REFERENCES):
                    found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_no_file_refers_outside_the_repository():
    assert outside_references(ROOT) == []


def test_the_check_finds_a_reference(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text(
        "fine\nsee " + OUTSIDE_REFERENCES[0] + "/spec.md for more\n"
    )
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "ignored.py").write_text("# CONTRACT" + " §1\n")
    (tmp_path / "photo.png").write_bytes(b"CONTRACT" + b".md")

    assert outside_references(tmp_path) == [
        "docs/notes.md:2: see " + OUTSIDE_REFERENCES[0] + "/spec.md for more"
    ]
