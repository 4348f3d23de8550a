"""The package's import graph, read from the source with `ast` (module-level and function-local imports):
no import circles, and every import points down a floor: stages never import the command line, the
pipeline or each other; helpers never import a stage, the command line or a helper above them; base
modules import only base modules below them; nothing in the runtime package imports the maintainer tools.

Floors, bottom to top (README.md, "Code map"), each in a fixed order that the tests pin:
  1. base: errors, vocabulary, reasoning (the one reasoning/answer split), fileio, wheels (files in pinned
     PyPI wheels), ranks (which process writes), then recipe (the schema)
  2. helpers: modeling, endpoints (the chat client), judges, data_sources, synthesis, training, analysis,
     context (what a stage gets), arms (the models eval compares)
  3. stages: data, warmup, pairs, srpo, baselines, eval, report (flat scripts, one per stage)
  4. orchestration: pipeline (the stage table), commands/ (judge, chat, export, compare), cli

SARO_LITE_CODE_MAP_ROOT=<path to a saro_lite folder> checks another copy of the package.
"""
from __future__ import annotations

import ast
import re
import os
from pathlib import Path

import pytest

PACKAGE = "saro_lite"
STAGES = ("data", "warmup", "pairs", "srpo", "baselines", "eval", "report")
BASE = ("errors", "vocabulary", "reasoning", "fileio", "wheels", "ranks", "recipe")
HELPERS = ("modeling", "endpoints", "judges", "data_sources", "synthesis", "training", "analysis", "context", "arms")
ORCHESTRATION = ("cli", "pipeline", "commands")


def package_root() -> Path:
    return Path(os.environ.get("SARO_LITE_CODE_MAP_ROOT") or Path(__file__).resolve().parents[2] / PACKAGE)


def module_names(root: Path) -> dict[str, Path]:
    """'saro_lite.judges.refusal' -> its file, for every .py under the package."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([PACKAGE, *parts])] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that `name` (a module or a name inside one) lives in."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every kit module (and `tools...`) the file imports, anywhere in it (function bodies included)."""
    is_pkg = path.name == "__init__.py"
    here = module if is_pkg else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                prefix = f"{base}.{node.module}" if node.module else base
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{a.name}" for a in node.names] + [prefix]
            targets = [t for t in targets if _resolve(t, modules) or t.startswith("tools")]
            # `from .x import y` names module x.y when that is a module, else a name in x
            targets = [t if t in modules else prefix for t in targets[:-1]] or [prefix]
        for t in targets:
            if t == "tools" or t.startswith("tools."):
                found.add(t)
                continue
            hit = _resolve(t, modules)
            if hit and hit != module:
                found.add(hit)
    return found


def import_graph(root: Path | None = None) -> dict[str, set[str]]:
    modules = module_names(root or package_root())
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def short(module: str) -> str:
    return module[len(PACKAGE) + 1:] if module.startswith(PACKAGE + ".") else module


def top_name(module: str) -> str:
    return short(module).split(".")[0]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, ())):
            if n not in graph:
                continue
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_is_read_from_the_package(graph):
    assert f"{PACKAGE}.cli" in graph and f"{PACKAGE}.pipeline" in graph
    assert f"{PACKAGE}.recipe" in graph[f"{PACKAGE}.cli"] or any(
        f"{PACKAGE}.recipe" in graph[m] for m in graph)


def test_no_import_circles(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(short(m) for m in cycle)


def test_every_stage_is_a_flat_script_on_top():
    root = package_root()
    for stage in STAGES:
        assert (root / f"{stage}.py").is_file(), f"stage {stage}: expected saro_lite/{stage}.py"


def test_stages_import_helpers_only(graph):
    bad = []
    for stage in STAGES:
        for target in graph.get(f"{PACKAGE}.{stage}", ()):
            name = top_name(target)
            if name in ORCHESTRATION or (name in STAGES and name != stage):
                bad.append(f"{stage} imports {short(target)}")
    assert not bad, "; ".join(bad)


def test_helpers_never_import_a_higher_layer(graph):
    bad = []
    for module, targets in graph.items():
        name = top_name(module)
        if name in STAGES or name in ORCHESTRATION:
            continue
        for target in targets:
            if top_name(target) in STAGES or top_name(target) in ORCHESTRATION:
                bad.append(f"{short(module)} imports {short(target)}")
            elif name in BASE and top_name(target) not in BASE and not target.startswith("tools"):
                bad.append(f"{short(module)} (base layer) imports {short(target)}")
    assert not bad, "; ".join(sorted(bad))


def test_base_and_helpers_import_only_what_is_below_them(graph):
    """The fixed order inside the two lower floors: a base module imports base modules earlier in BASE; a
    helper imports base modules and helpers earlier in HELPERS (and its own modules)."""
    order = {name: i for i, name in enumerate(BASE + HELPERS)}
    bad = []
    for module, targets in graph.items():
        name = top_name(module)
        if name not in order:
            continue
        for target in targets:
            other = top_name(target)
            if other != name and not target.startswith("tools") and order.get(other, len(order)) > order[name]:
                bad.append(f"{short(module)} imports {short(target)}")
    assert not bad, "imports that run up: " + "; ".join(sorted(bad))


def test_every_top_level_module_has_a_floor():
    root = package_root()
    names = {p.stem for p in root.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert names == set(BASE) | set(HELPERS) | set(STAGES) | set(ORCHESTRATION), \
        names ^ (set(BASE) | set(HELPERS) | set(STAGES) | set(ORCHESTRATION))


def test_the_runtime_package_never_imports_the_tools(graph):
    bad = [f"{short(m)} imports {t}" for m, ts in graph.items() for t in ts if t.split(".")[0] == "tools"]
    assert not bad, "; ".join(bad)


def test_the_pipeline_dispatches_through_callables():
    text = (package_root() / "pipeline.py").read_text(encoding="utf-8")
    assert "importlib" not in text, "pipeline.py: stages are dispatched through a table of callables"


# dotted names of the package in prose: saro_lite.x.y, or a helper subpackage's module path (modeling.x.y)
DOTTED = re.compile(r"\b((?:saro_lite|modeling|judges|data_sources|synthesis|endpoints|analysis|training)"
                    r"(?:\.[A-Za-z_]\w*)+)")


def resolve_dotted(name: str) -> bool:
    """Whether `name` (saro_lite.-prefixed or not) is a module of the package or a name defined in one."""
    import importlib

    parts = name.split(".")
    if parts[0] != PACKAGE:
        parts = [PACKAGE] + parts
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_dotted_name_in_docstrings_and_the_readme_exists():
    """`saro_lite.judges.reply.judge_reply`, `modeling.rendering.Renderer`, ... in docstrings, comments, the
    README and DEVELOPERS.md name something that exists (paths that moved leave no stale words behind)."""
    root = package_root()
    texts = {p: p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))}
    for doc in ("README.md", "DEVELOPERS.md"):
        path = root.parent / doc
        if path.exists():
            texts[path] = path.read_text(encoding="utf-8")
    stale = set()
    for path, text in texts.items():
        if path.suffix == ".py":  # prose only: docstrings and comments (code is checked by importing it)
            prose = [n.value for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant)
                     and isinstance(n.value, str)] + re.findall(r"#[^\n]*", text)
        else:
            prose = [text]
        for chunk in prose:
            for name in DOTTED.findall(chunk):
                name = name.rstrip(".")
                if name.endswith(("py", "jsonl", "json", "md", "yaml")) and "." in name:
                    name = name.rsplit(".", 1)[0]  # a file name: data_sources.records.py -> its module
                if not resolve_dotted(name):
                    stale.add(f"{path.name}: {name}")
    assert not stale, "names that do not exist: " + "; ".join(sorted(stale))


SLASHED = re.compile(r"\b((?:saro_lite/)?(?:modeling|judges|data_sources|synthesis|endpoints|analysis|training|commands)"
                     r"/\w+\.py|saro_lite/\w+\.py)\b")


def test_every_file_path_in_docstrings_and_the_readme_exists():
    root = package_root()
    texts = {p: p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))}
    for doc in ("README.md", "DEVELOPERS.md"):
        if (root.parent / doc).exists():
            texts[root.parent / doc] = (root.parent / doc).read_text(encoding="utf-8")
    missing = {f"{path.name}: {rel}" for path, text in texts.items() for rel in SLASHED.findall(text)
               if not (root / rel.removeprefix("saro_lite/")).exists()}
    assert not missing, "files that do not exist: " + "; ".join(sorted(missing))
