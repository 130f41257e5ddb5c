"""SSIC 2025, the Singapore Standard Industrial Classification, from the packaged CSV.

ACRA's `primary_ssic_code` / `secondary_ssic_code` are 5-digit sub-class codes; validation
checks them against `subclass_codes()`. The CSV ships inside the package
(`leadgen_core/data/ssic2025.csv`, Department of Statistics Singapore, see data/README.md), so
loading never touches the network or the database. Everything here is read once and cached.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Final, Literal, cast

DATA_PACKAGE: Final = "leadgen_core.data"
SSIC_FILE: Final = "ssic2025.csv"
LEVELS: Final[tuple[str, ...]] = ("section", "division", "group", "class", "subclass")
EXPECTED_COLUMNS: Final[frozenset[str]] = frozenset({"code", "level", "title", "parent", "definition", "examples"})
EXAMPLE_BULLET: Final = "\u2022"

SsicLevel = Literal["section", "division", "group", "class", "subclass"]


@dataclass(frozen=True, slots=True)
class SsicEntry:
    """One SSIC 2025 code. `parent` is None for sections; text fields are "" when the source is empty."""

    code: str
    level: SsicLevel
    title: str
    parent: str | None
    definition: str
    examples: str

    @property
    def example_items(self) -> tuple[str, ...]:
        """The bullet-separated examples as separate, trimmed activities."""
        parts = self.examples.replace("\n", EXAMPLE_BULLET).split(EXAMPLE_BULLET)
        return tuple(p.strip() for p in parts if p.strip())


def _parse(text: str) -> tuple[SsicEntry, ...]:
    reader = csv.DictReader(io.StringIO(text))
    missing = EXPECTED_COLUMNS - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"{SSIC_FILE}: missing columns {sorted(missing)}")
    entries: list[SsicEntry] = []
    for row in reader:
        level = row["level"].strip()
        if level not in LEVELS:
            raise ValueError(f"{SSIC_FILE}: code {row['code']!r} has unknown level {level!r}")
        entries.append(
            SsicEntry(
                code=row["code"].strip(),
                level=cast(SsicLevel, level),
                title=row["title"].strip(),
                parent=row["parent"].strip() or None,
                definition=(row["definition"] or "").strip(),
                examples=(row["examples"] or "").strip(),
            )
        )
    return tuple(entries)


@lru_cache(maxsize=1)
def load_ssic() -> tuple[SsicEntry, ...]:
    """Every SSIC 2025 code (all five levels), in the file's order."""
    text = resources.files(DATA_PACKAGE).joinpath(SSIC_FILE).read_text(encoding="utf-8")
    return _parse(text)


@lru_cache(maxsize=1)
def ssic_by_code() -> Mapping[str, SsicEntry]:
    """Code -> entry, read-only."""
    return MappingProxyType({e.code: e for e in load_ssic()})


@lru_cache(maxsize=1)
def subclasses() -> tuple[SsicEntry, ...]:
    """The 5-digit sub-classes, the level ACRA records refer to."""
    return tuple(e for e in load_ssic() if e.level == "subclass")


@lru_cache(maxsize=1)
def subclass_codes() -> frozenset[str]:
    """The set of valid 5-digit codes for `validate_row(known_ssic=...)`."""
    return frozenset(e.code for e in subclasses())
