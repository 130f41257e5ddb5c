"""The exception tree in leadgen_core.errors' docstring names every LeadgenError subclass (issue 11 §8)."""

from __future__ import annotations

import importlib
import pkgutil

import leadgen_core
from leadgen_core import errors


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= _all_subclasses(sub)
    return found


def test_every_leadgen_error_is_in_the_tree() -> None:
    for info in pkgutil.walk_packages(leadgen_core.__path__, prefix="leadgen_core."):
        importlib.import_module(info.name)
    doc = errors.__doc__ or ""
    classes = {c for c in _all_subclasses(errors.LeadgenError) if c.__module__.startswith("leadgen_core.")}
    assert len(classes) >= 25
    tree_lines = [line.strip(" │├└─") for line in doc.splitlines()]
    missing = []
    for cls in classes:
        module = cls.__module__.removeprefix("leadgen_core.")
        line = next((ln for ln in tree_lines if ln.split(" ", 1)[0] == cls.__name__), None)
        if line is None or (module != "errors" and f"({module})" not in line):
            missing.append(f"{cls.__name__} ({module})")
    assert not missing, f"not in the errors.py tree with its module: {sorted(missing)}"
