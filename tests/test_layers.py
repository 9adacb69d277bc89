"""The package's layers (docs/design.md §2): every module imports only from layers below it.

| layer | modules |
|---|---|
| 0 | ``tf_tools`` (its ``__init__``), ``errors``, ``schema``, ``console`` |
| 1 | ``records``, ``models`` |
| 2 | ``answers`` (a package) |
| 3 | the stage packages ``sampling``, ``grading``, ``clustering``, ``fusion``, ``training``, ``stats`` |
| 4 | ``cli`` |

Rules, checked on the imports of every module under ``tf_tools/`` (read with ``ast``, so the
imports inside functions count as much as those at the top, and so do ``TYPE_CHECKING``
ones), for each import of a ``tf_tools`` module:

1. never from a higher layer;
2. a stage package never imports another stage package (each stage may import itself);
3. within layers 0 and 1, only downwards in the order below: ``errors`` is the bottom, and
   ``schema`` and ``console`` may import it (and the package ``__init__``, which holds the
   version); ``records`` may not import ``models`` nor ``models`` ``records``, so neither
   layer-1 module can pull the other in. Modules of one package (``answers/``, a stage,
   ``cli/``) import each other freely: cycles there are the package's own business.

What two stages share moves down a layer instead of being imported across (this is how
``answers/`` came to be, out of ``grading/`` and ``clustering/``, issue 12).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "tf_tools"
STAGES = ("sampling", "grading", "clustering", "fusion", "training", "stats")

#: top-level module or package of tf_tools -> layer
LAYERS: dict[str, float] = {
    "": 0, "errors": 0, "schema": 0, "console": 0,
    "records": 1, "models": 1,
    "answers": 2,
    **{stage: 3 for stage in STAGES},
    "planning": 3.5,  # rounds: the clustering stage's entropy and the fusion stage's k rule
    "cli": 4,
}

#: same-layer imports allowed between different top-level modules of layers 0 and 1
#: (importer, imported); "" is the package's ``__init__``
SAME_LAYER_ALLOWED = {
    ("schema", "errors"), ("console", "errors"),
    ("errors", ""), ("schema", ""), ("console", ""),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The tf_tools modules that ``source`` (module ``module``) imports, anywhere in it.

    ``from X import name`` counts as importing ``X.name`` when that is a module (``known``),
    else ``X``; relative imports are resolved against ``module``'s package.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {name for name in found if name == "tf_tools" or name.startswith("tf_tools.")}


def top(module: str) -> str:
    """The top-level module or package of tf_tools a module belongs to ("" for tf_tools)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violation(importer: str, imported: str) -> str | None:
    """Which rule ``importer`` importing ``imported`` breaks, or None."""
    a, b = top(importer), top(imported)
    if a == b:
        return None
    la, lb = LAYERS[a], LAYERS[b]
    if lb > la:
        return f"layer {la} imports layer {lb}"
    if la == lb == 3:
        return "a stage package imports another stage package"
    if la == lb and (a, b) not in SAME_LAYER_ALLOWED:
        return f"layer {la}: {a or 'tf_tools'} may not import {b or 'tf_tools'}"
    return None


def find_violations() -> dict[tuple[str, str], str]:
    modules = all_modules()
    known = set(modules)
    out = {}
    for name, path in modules.items():
        for imported in imports_of(path.read_text(encoding="utf-8"), name,
                                   path.name == "__init__.py", known):
            why = violation(name, imported)
            if why:
                out[(name, imported)] = why
    return out


def test_every_module_has_a_layer():
    unknown = sorted({top(m) for m in all_modules()} - set(LAYERS))
    assert not unknown, f"tf_tools modules with no layer: {unknown}; add them to LAYERS and docs/design.md §2"


def test_imports_respect_the_layers():
    found = find_violations()
    assert not found, "\n".join(f"{a} imports {b}: {why}" for (a, b), why in sorted(found.items()))


# ----------------------------------------------------------------------------- the checker itself


def test_imports_are_found_anywhere_and_resolved():
    source = '''
from __future__ import annotations
import os
import tf_tools.records
from tf_tools import console, __version__
from . import prompts
from ..grading.extract import extract_answer
def f():
    from tf_tools.clustering import answers
    class C:
        def g(self):
            import tf_tools.training.loop as loop
'''
    known = {"tf_tools", "tf_tools.records", "tf_tools.console", "tf_tools.sampling",
             "tf_tools.sampling.prompts", "tf_tools.sampling.sampler", "tf_tools.grading.extract",
             "tf_tools.clustering", "tf_tools.clustering.answers", "tf_tools.training.loop"}
    assert imports_of(source, "tf_tools.sampling.sampler", False, known) == {
        "tf_tools.records", "tf_tools.console", "tf_tools", "tf_tools.sampling.prompts",
        "tf_tools.grading.extract", "tf_tools.clustering.answers", "tf_tools.training.loop"}
    # in a package's __init__, "." is the package itself
    assert imports_of("from .base import X", "tf_tools.sampling.engines", True,
                      {"tf_tools.sampling.engines.base"}) == {"tf_tools.sampling.engines.base"}


@pytest.mark.parametrize("importer, imported, broken", [
    ("tf_tools.cli.grade", "tf_tools.grading.grader", False),
    ("tf_tools.grading.grader", "tf_tools.answers.extract", False),
    ("tf_tools.sampling.engines.hf", "tf_tools.sampling.engines.base", False),
    ("tf_tools.schema", "tf_tools.errors", False),
    ("tf_tools.fusion.fuse", "tf_tools", False),
    ("tf_tools.records", "tf_tools.schema", False),
    ("tf_tools.training.loop", "tf_tools.sampling.engines", True),  # stage -> stage
    ("tf_tools.grading.grader", "tf_tools.cli.common", True),  # up
    ("tf_tools.answers.pool", "tf_tools.grading.pool", True),  # up
    ("tf_tools.records", "tf_tools.models", True),  # across layer 1
    ("tf_tools.errors", "tf_tools.schema", True),  # up within layer 0
    ("tf_tools.schema", "tf_tools.console", True),
])
def test_rules(importer, imported, broken):
    assert (violation(importer, imported) is not None) is broken
