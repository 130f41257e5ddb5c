"""Issue 11 §8, one way to do each thing: the single constructors that the product code must use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _product_files() -> list[Path]:
    return [p for pkg in ("leadgen_core", "leadgen_dagster") for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_only_open_spender_builds_a_spender() -> None:
    builders = [str(p.relative_to(ROOT)) for p in _product_files() if "Spender(" in p.read_text(encoding="utf-8")]
    assert builders == ["leadgen_core/spend/spender.py"], builders


def test_one_sandbox_rule_for_dev_and_night(monkeypatch: pytest.MonkeyPatch) -> None:
    """`leadgen dev` and `leadgen night` both start the sandbox only when no vendor key or URL is set."""
    from leadgen_core.runtime import uses_sandbox
    from leadgen_core.settings import Settings

    names = [f"{v}_{k}" for v in ("TAVILY", "LUSHA", "ZEROBOUNCE", "OPENAI") for k in ("API_KEY", "BASE_URL")]
    for name in names:
        monkeypatch.delenv(name, raising=False)
    assert uses_sandbox(Settings())
    for name in names:
        monkeypatch.setenv(name, "http://vendor.example" if name.endswith("URL") else "k-123456")
        assert not uses_sandbox(Settings()), name
        monkeypatch.delenv(name)
    for cli in ("dev.py", "night.py"):
        text = (ROOT / "leadgen_dagster" / "cli" / cli).read_text(encoding="utf-8")
        assert "uses_sandbox(" in text and "api_key is None" not in text, cli


def test_no_sql_in_the_dagster_layer() -> None:
    """The CLI, the sensors and the assets call named statements of leadgen_core; they write no SQL."""
    sql = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b")
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted((ROOT / "leadgen_dagster").rglob("*.py"))
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if sql.search(line)
    ]
    assert not found, found


def test_product_code_never_imports_the_sandbox() -> None:
    """Only the CLI, the tests, the benchmarks and the sandbox itself import leadgen_core.sandbox (ruff TID251
    enforces it in leadgen_core; this covers leadgen_dagster outside cli/, which ruff exempts for dagster)."""
    imports = re.compile(
        r"^\s*(from leadgen_core\.sandbox\b|import leadgen_core\.sandbox\b|from leadgen_core import sandbox\b)"
    )
    allowed = (ROOT / "leadgen_core" / "sandbox", ROOT / "leadgen_dagster" / "cli")
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in _product_files()
        if not any(p.is_relative_to(a) for a in allowed)
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if imports.match(line)
    ]
    assert not found, found


def test_no_private_dagster_import() -> None:
    """No `dagster._...` import: private modules change without notice between Dagster releases."""
    private = re.compile(r"^\s*(from|import)\s+dagster(_\w+)?\._")
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in _product_files()
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if private.match(line)
    ]
    assert not found, found


def test_one_openai_client_factory() -> None:
    """Only enrich.clients.openai_extractor builds the OpenAI client the product uses."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "leadgen_core"
    builders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "sandbox" not in p.parts and re.search(r"\bOpenAIExtractor\(", p.read_text(encoding="utf-8"))
    ]
    assert builders == ["enrich/clients.py"], builders
