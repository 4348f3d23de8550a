"""The one object a stage's `run(ctx)` receives (see Context)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .recipe import Recipe


@dataclass
class Context:
    """What a stage gets: the recipe, the run folder, the console, the resolved model path, the stage's
    fingerprint (the settings it reads plus the identities of its upstream stages' outputs, set by the
    pipeline before each stage: trainer checkpoints and finished eval sets are stamped with it), whether
    the run asked for --fresh (nothing is resumed then), and objects stages may share (the tokenizer)."""

    recipe: Recipe
    run_dir: Path
    console: object
    model_path: str = ""
    fingerprint: str = ""
    fresh: bool = False
    shared: dict = field(default_factory=dict)

    def path(self, rel: str) -> Path:
        return self.run_dir / rel

    def tokenizer(self):
        if "tokenizer" not in self.shared:
            from .modeling.loading import load_tokenizer

            self.shared["tokenizer"] = load_tokenizer(self.recipe, self.model_path)
        return self.shared["tokenizer"]

    def renderer(self):
        from .modeling.rendering import make_renderer

        return make_renderer(self.recipe, self.tokenizer())
