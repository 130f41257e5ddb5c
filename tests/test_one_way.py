"""Issue 11 §8, one way to do each thing: the single constructors that the product code must use."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _product_files() -> list[Path]:
    return [p for pkg in ("leadgen_core", "leadgen_dagster") for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_only_open_spender_builds_a_spender() -> None:
    builders = [str(p.relative_to(ROOT)) for p in _product_files() if "Spender(" in p.read_text(encoding="utf-8")]
    assert builders == ["leadgen_core/spend.py"], builders
