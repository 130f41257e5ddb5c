"""A synthetic ACRA registry: realistic rows as ACRA publishes them, deterministic per seed.

Everything here is simulated. Names are invented from word lists, UENs follow ACRA's three
formats and are unique within a run, SSIC codes and descriptions are real SSIC 2025 sub-classes
(weighted toward software, wholesale, logistics, manufacturing and F&B, as the registry is),
addresses use real-looking Singapore street names and postal sectors, "na" marks missing values.

About `malformed_rate` of the rows carry exactly one defect, cycling through MALFORMED_KINDS (the
reject reason validate.py gives them). A bad-UTF-8 field is a str with a surrogateescape
character; `write_csv` turns it back into the raw byte, as a broken upstream export would.
Row k is the same for every n >= k, so a small registry is a prefix of a large one.
"""

from __future__ import annotations

import csv
import random
from bisect import bisect
from collections.abc import Iterator
from datetime import date
from itertools import accumulate
from pathlib import Path
from typing import Final

from leadgen_core.acra.columns import STAGING_COLUMNS
from leadgen_core.acra.ssic import subclasses

MALFORMED_KINDS: Final[tuple[str, ...]] = (
    "bad_uen", "impossible_date:registration_incorporation_date", "unknown_ssic:99999", "field_too_long:building_name",
    "bad_utf8:entity_name", "missing_name", "control_characters:street_name",
)  # fmt: skip
NA: Final = "na"
FIRST_YEAR, LAST_YEAR = 1965, 2025
UEN_SCHEME_START: Final = date(2009, 1, 1)  # UENs were issued to every existing entity on this day
LAST_DAY: Final = date(2025, 10, 31)
LETTERS: Final = "ABCDEFGHJKLMNPQRSTUVWXZ"


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    """A vocabulary written as one string (compact to read), as a tuple."""
    return tuple(text.split(sep))


NAME_WORDS_A: Final = _words(
    "LION MERLION ORCHID RAFFLES TEMASEK STRAITS HARBOUR MARINA PACIFIC ORIENT GOLDEN EVERGREEN SUNRISE "
    "JADE PEARL DRAGON PHOENIX LOTUS BAMBOO KALLANG JURONG TAMPINES BEDOK KATONG SERANGOON TANJONG CAPITAL "
    "UNITED GLOBAL ASIA SINO INDO EQUATOR MERIDIAN SUMMIT APEX ZENITH VERTEX NOVA STELLAR QUANTUM FUSION "
    "PRIME NEXUS HORIZON PINNACLE BRIGHT SILVER IVORY CEDAR BANYAN ANGSANA TEMBUSU MONSOON COASTAL ISLAND"
)
NAME_WORDS_B: Final = _words(
    "HARMONY UNITY TRINITY CROWN ROYAL IMPERIAL HUA XIN WAH HOCK SENG TAT KIM HENG SOON LEONG CHUAN "
    "BLUE RED GREEN OCEAN RIVER BRIDGE GATE STAR MOON SUN SKY PEAK VALLEY BAY POINT CITY LINK WAVE "
    "ARROW ANCHOR BEACON COMPASS FALCON EAGLE TIGER PANTHER HAWK ORBIT PULSE SPARK CORE EDGE FORGE "
    "ALPHA OMEGA DELTA SIGMA NORTH SOUTH EAST WEST"
)
NAME_WORDS_C: Final = _words(
    "ONE PLUS SG ASIA PACIFIC INTERNATIONAL WORLDWIDE HOLDINGS GROUP 88 168 EIGHT NINE TWIN TRIPLE "
    "NEW TRUE GOOD BEST FIRST SMART WISE RICH"
)
INDUSTRY_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "62": ("TECHNOLOGIES", "SOFTWARE", "DIGITAL", "SYSTEMS", "LABS"),
    "46": ("TRADING", "SUPPLIES", "DISTRIBUTION", "IMPORT & EXPORT", "MARKETING"),
    "52": ("LOGISTICS", "FREIGHT", "SHIPPING", "TRANSPORT", "EXPRESS"),
    "56": ("KITCHEN", "FOOD", "CAFE", "EATERY", "F&B"),
    "41": ("CONSTRUCTION", "BUILDERS", "RENOVATION", "CONTRACTORS"),
    "47": ("RETAIL", "STORE", "MART"),
    "64": ("CAPITAL", "INVESTMENTS", "HOLDINGS", "VENTURES"),
    "68": ("PROPERTIES", "REALTY", "ESTATES"),
    "70": ("CONSULTING", "CONSULTANCY", "PARTNERS", "ADVISORY"),
    "mfg": ("MANUFACTURING", "ENGINEERING", "INDUSTRIES", "PRECISION", "METAL WORKS"),
    "other": ("SERVICES", "SOLUTIONS", "GROUP", "ENTERPRISES"),
}
DIVISION_WORDS: Final = {
    **{d: "mfg" for d in (f"{x:02d}" for x in range(10, 34))},
    **{d: "52" for d in ("49", "50", "51", "52", "53")},
    **{d: "41" for d in ("41", "42", "43")},
    **{d: "64" for d in ("64", "65", "66")},
    **{d: "70" for d in ("69", "70", "71", "72", "73", "74")},
    "62": "62", "63": "62", "46": "46", "47": "47", "56": "56", "68": "68",
}  # fmt: skip
STREETS: Final = _words(
    "ANG MO KIO AVENUE 3|ANSON ROAD|BEACH ROAD|BENDEMEER ROAD|BUKIT BATOK STREET 22|BUKIT MERAH VIEW|"
    "CECIL STREET|CHANGI BUSINESS PARK CRESCENT|CHANGI SOUTH LANE|CIRCULAR ROAD|CLEMENTI AVENUE 2|"
    "COLLYER QUAY|CROSS STREET|GEYLANG ROAD|HAVELOCK ROAD|JALAN BESAR|JALAN BUKIT MERAH|"
    "JURONG EAST STREET 21|JURONG WEST STREET 42|KAKI BUKIT ROAD 1|KALLANG AVENUE|KALLANG BAHRU|"
    "KEPPEL ROAD|LAVENDER STREET|LORONG CHUAN|MACPHERSON ROAD|MARINA BOULEVARD|MARKET STREET|"
    "NORTH BRIDGE ROAD|ORCHARD ROAD|OUTRAM ROAD|PASIR PANJANG ROAD|PAYA LEBAR ROAD|PIONEER ROAD|"
    "QUEEN STREET|RAFFLES PLACE|RIVER VALLEY ROAD|ROBINSON ROAD|SCIENCE PARK DRIVE|SERANGOON ROAD|"
    "SHENTON WAY|SIMS AVENUE|SIN MING LANE|SOUTH BRIDGE ROAD|TAI SENG STREET|TAMPINES STREET 92|"
    "TANJONG PAGAR ROAD|TELOK AYER STREET|TOA PAYOH LORONG 4|UBI AVENUE 1|UBI CRESCENT|"
    "UPPER CROSS STREET|UPPER THOMSON ROAD|WOODLANDS INDUSTRIAL PARK E1|YISHUN INDUSTRIAL STREET 1|"
    "TUAS AVENUE 8|GUL CIRCLE|BENOI ROAD|ALEXANDRA ROAD|HARBOURFRONT AVENUE|AYER RAJAH CRESCENT",
    "|",
)
BUILDINGS: Final = _words(
    "TECHPLACE I|TECHPLACE II|UBI TECHPARK|INTERNATIONAL PLAZA|PENINSULA PLAZA|SHENTON HOUSE|"
    "GOLDEN MILE COMPLEX|NORTHSTAR @ AMK|PAYA LEBAR SQUARE|OXLEY BIZHUB|MIDVIEW CITY|WOODLANDS BIZHUB|"
    "HARBOURFRONT CENTRE|TAI SENG CENTRE|KALLANG BASIN INDUSTRIAL ESTATE|SIMS URBAN OASIS|"
    "CITY HOUSE|PARKWAY PARADE|THE CENTRAL|TRIVEX|SOLARIS|FUSIONOPOLIS ONE",
    "|",
)
FOREIGN_LINES: Final = (
    ("88 QUEEN'S ROAD CENTRAL", "HONG KONG"), ("1 RAFFLES QUAY NORTH", "KUALA LUMPUR, MALAYSIA"),
    ("200 PARK AVENUE", "NEW YORK, NY 10166, USA"), ("25 CANADA SQUARE", "LONDON E14 5LQ, UNITED KINGDOM"),
    ("JL. JEND. SUDIRMAN KAV. 52-53", "JAKARTA 12190, INDONESIA"), ("8 SHENTON PLACE", "SYDNEY NSW 2000, AUSTRALIA"),
)  # fmt: skip
POSTAL_SECTORS: Final = tuple(f"{s:02d}" for s in range(1, 83) if s != 74)
# (entity type, weight, statuses with weights, name suffixes, UEN scheme)
ENTITY_TYPES: Final = (
    ("Local Company", 64, (("Live Company", 80), ("Struck Off", 13), ("Gazetted to be Struck Off", 3),
                           ("Dissolved - Members' Voluntary Winding Up", 3), ("Amalgamated", 1)),
     ("PTE. LTD.",), "company"),
    ("Sole Proprietorship/ Partnership", 27, (("Live", 70), ("Cancelled", 15), ("Ceased Registration", 12),
                                              ("Expired", 3)),
     ("ENTERPRISE", "TRADING", "SERVICES", "& CO."), "business"),
    ("Limited Liability Partnership", 6, (("Live", 85), ("Struck Off", 15)), ("LLP",), "LL"),
    ("Foreign Company", 2, (("Registered", 85), ("Cancelled", 15)), ("LIMITED", "INC.", "CO., LTD."), "FC"),
    ("Limited Partnership", 1, (("Live", 85), ("Cancelled", 15)), ("LP",), "LP"),
)  # fmt: skip
COMPANY_TYPES: Final = (
    ("Private Company Limited by Shares", 86), ("Exempt Private Company Limited by Shares", 10),
    ("Public Company Limited by Shares", 3), ("Public Company Limited by Guarantee", 1),
)  # fmt: skip
LIVE_STATUSES: Final = frozenset({"Live Company", "Live", "Registered"})


def _weighted(pairs: tuple[tuple[str, int], ...]) -> tuple[tuple[str, ...], list[float]]:
    total = sum(w for _, w in pairs)
    return tuple(v for v, _ in pairs), [c / total for c in accumulate(w for _, w in pairs)]


def _ssic_pools() -> tuple[list[tuple[str, ...]], list[float]]:
    codes = [e.code for e in subclasses()]

    def pool(*prefixes: str) -> tuple[str, ...]:
        return tuple(c for c in codes if c.startswith(prefixes))

    mfg = tuple(f"{d:02d}" for d in range(10, 34))
    pools = [  # (codes, weight): the registry leans on trade, tech, logistics, F&B and professional services
        (("62011", "62011", "62011", "62012", "62013", "62021", "62090"), 10),
        (pool("46"), 18), (pool("52", "49"), 8), (pool(*mfg), 10), (pool("56"), 8), (pool("41", "42", "43"), 6),
        (pool("69", "70", "71", "73", "74"), 10), (pool("64", "66", "68"), 6), (pool("47"), 6), (tuple(codes), 18),
    ]  # fmt: skip
    total = sum(w for _, w in pools)
    return [p for p, _ in pools], [c / total for c in accumulate(w for _, w in pools)]


class _UenMint:
    """Unique UENs: per-year serials for companies, a bijection for businesses, per-year serials for T-codes."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._serials: dict[tuple[str, int], int] = {}
        self._business = rng.randrange(10_000_000)

    def _serial(self, kind: str, year: int, *, capacity: int, first_year: int) -> tuple[int, int]:
        span = LAST_YEAR - first_year + 1
        for offset in range(span):  # a full year spills into the following ones
            y = first_year + (year - first_year + offset) % span
            used = self._serials.get((kind, y), 0)
            if used < capacity:
                self._serials[(kind, y)] = used + 1
                return y, used + 1
        raise ValueError(f"UEN space for {kind} exhausted")

    def mint(self, scheme: str, year: int) -> str:
        check = LETTERS[int(self._rng.random() * len(LETTERS))]
        if scheme == "company":
            y, serial = self._serial(scheme, year, capacity=99_999, first_year=FIRST_YEAR)
            return f"{y}{serial:05d}{check}"
        if scheme == "business":
            self._business += 1
            # 7919 is prime, so k -> k*7919 mod 9e7 never repeats within 90 million businesses.
            return f"{(self._business * 7919) % 90_000_000 + 10_000_000:08d}{check}"
        # The T-prefix scheme (T = 20xx) started with the UEN in 2009.
        y, serial = self._serial(scheme, max(year, 2009), capacity=9_999, first_year=2009)
        return f"T{y % 100:02d}{scheme}{serial:04d}{check}"


def _name_pairs() -> list[str]:
    """Every "<A> <B>" pair once, in an order that spreads neighbours apart."""
    size = len(NAME_WORDS_A) * len(NAME_WORDS_B)
    pairs = [""] * size
    for i in range(size):
        # 7919 is a prime above |A|*|B|, so i -> i*7919 mod size is a permutation.
        b, a = divmod((i * 7919 + 3) % size, len(NAME_WORDS_A))
        pairs[i] = f"{NAME_WORDS_A[a]} {NAME_WORDS_B[b]}"
    return pairs


def _name_stem(index: int, pairs: list[str]) -> str:
    """Unique per index: the pairs cover the first block of rows, a third word each later block."""
    block, within = divmod(index, len(pairs))
    if not block:
        return pairs[within]
    round_, extra = divmod(block - 1, len(NAME_WORDS_C))
    return f"{pairs[within]} {NAME_WORDS_C[extra]}" + (f" {round_ + 2}" if round_ else "")


def _generate_values(n: int, seed: int, malformed_rate: float) -> Iterator[list[str]]:
    rng = random.Random(seed)
    r = rng.random
    mint = _UenMint(rng).mint
    pools, pool_cum = _ssic_pools()
    titles = {e.code: e.title.upper() for e in subclasses()}
    activities = {e.code: (e.example_items[0].upper() if e.example_items else e.title.upper()) for e in subclasses()}
    types_cum = list(accumulate(t[1] for t in ENTITY_TYPES))
    type_status = [_weighted(t[2]) for t in ENTITY_TYPES]
    ctype_values, ctype_cum = _weighted(COMPANY_TYPES)
    # Lookup tables instead of per-row formatting: this loop runs a million times.
    first_ordinal = date(FIRST_YEAR, 1, 1).toordinal()
    days = [date.fromordinal(o).isoformat() for o in range(first_ordinal, LAST_DAY.toordinal() + 1)]
    n_days, issue_floor = len(days), UEN_SCHEME_START.toordinal() - first_ordinal
    pairs = _name_pairs()
    blocks = [str(i) for i in range(1, 1000)] + [f"{i}A" for i in range(1, 100)]
    two_digit = [f"{i:02d}" for i in range(1, 100)]
    officers = [str(i) for i in range(1, 13)]  # most companies have one or two officers
    year_ends = [date(2025, m, 1).isoformat() for m in range(1, 13)]
    industries = {code: INDUSTRY_WORDS[DIVISION_WORDS.get(code[:2], "other")] for code in titles}

    for index in range(n):
        type_index = bisect(types_cum, r() * types_cum[-1])
        etype, _weight, _statuses, suffixes, scheme = ENTITY_TYPES[type_index]
        statuses, status_cum = type_status[type_index]
        status = statuses[bisect(status_cum, r())]
        day = n_days - 1 - int(n_days * r() ** 2.2)  # skewed toward recent years, as registrations are
        reg = days[day]
        pool = pools[bisect(pool_cum, r())]
        code = pool[int(r() * len(pool))]
        second = NA
        if r() < 0.35:
            pool = pools[bisect(pool_cum, r())]
            second = pool[int(r() * len(pool))]
            second = NA if second == code else second
        words = industries[code]
        industry = words[int(r() * len(words))]
        is_company = scheme == "company"
        live_company = is_company and status in LIVE_STATUSES
        if is_company:
            ctype = ctype_values[bisect(ctype_cum, r())]
            suffix = "LIMITED" if ctype.startswith("Public") else "PTE. LTD."
        else:
            ctype, suffix = NA, suffixes[int(r() * len(suffixes))]
        if r() < 0.97:
            address = [
                "LOCAL",
                blocks[int(r() * len(blocks))] if r() < 0.7 else NA,
                STREETS[int(r() * len(STREETS))],
                *((two_digit[int(r() * 30)], two_digit[int(r() * 99)]) if r() < 0.8 else (NA, NA)),
                BUILDINGS[int(r() * len(BUILDINGS))] if r() < 0.45 else NA,
                f"{POSTAL_SECTORS[int(r() * len(POSTAL_SECTORS))]}{int(r() * 10000):04d}",
                NA,
                NA,
            ]
        else:
            line1, line2 = FOREIGN_LINES[int(r() * len(FOREIGN_LINES))]
            address = ["FOREIGN", NA, NA, NA, NA, NA, NA, line1, line2]
        row = [
            mint(scheme, int(reg[:4])),
            f"{_name_stem(index, pairs)} {industry} {suffix}",
            etype,
            ("Partnership" if r() < 0.2 else "Sole-Proprietor") if scheme == "business" else NA,
            ctype,
            NA,
            status,
            reg,
            days[max(day, issue_floor)],
            *address,
            year_ends[int(r() * 12)] if live_company else NA,
            days[n_days - 1 - int(r() * 365)] if live_company else NA,
            code,
            titles[code],
            activities[code] if r() < 0.15 else NA,
            second,
            titles[second] if second != NA else NA,
            NA,
            officers[int(r() ** 2 * len(officers))] if is_company else NA,
        ]
        if r() < malformed_rate:
            _break(row, MALFORMED_KINDS[int(r() * len(MALFORMED_KINDS))])
        yield row


_COL = {c: i for i, c in enumerate(STAGING_COLUMNS)}


def _break(row: list[str], kind: str) -> None:
    """Give ROW exactly the defect KIND (one of MALFORMED_KINDS)."""
    if kind == "bad_uen":
        row[_COL["uen"]] = row[_COL["uen"]][:-1] + "-"
    elif kind.startswith("impossible_date"):
        row[_COL["registration_incorporation_date"]] = "2023-02-30"
    elif kind.startswith("unknown_ssic"):
        row[_COL["primary_ssic_code"]] = "99999"
    elif kind.startswith("field_too_long"):
        row[_COL["building_name"]] = " / ".join(BUILDINGS)  # an export that glued a list into one cell
    elif kind.startswith("bad_utf8"):
        # "CAFÉ" as Latin-1: byte 0xC9 is not UTF-8; surrogateescape carries it as U+DCC9.
        row[_COL["entity_name"]] = "CAF\udcc9 " + row[_COL["entity_name"]]
    elif kind == "missing_name":
        row[_COL["entity_name"]] = NA
    elif kind.startswith("control_characters"):
        row[_COL["street_name"]] = row[_COL["street_name"]] + "\x1a"  # DOS end-of-file marker
    else:
        raise ValueError(f"unknown malformed kind {kind!r}")


def _check(n: int, malformed_rate: float) -> None:
    if n < 0 or not 0.0 <= malformed_rate <= 1.0:
        raise ValueError("n must be >= 0 and malformed_rate within [0, 1]")


def generate_rows(n: int, *, seed: int = 7, malformed_rate: float = 0.01) -> Iterator[dict[str, str]]:
    """N synthetic ACRA rows (all values str, ACRA column names), deterministic for a seed."""
    _check(n, malformed_rate)  # here, not inside a generator, so bad arguments fail at the call
    return (dict(zip(STAGING_COLUMNS, values, strict=True)) for values in _generate_values(n, seed, malformed_rate))


def write_csv(path: str | Path, n: int, *, seed: int = 7, malformed_rate: float = 0.01) -> int:
    """Write N rows as ACRA's CSV download (header, UTF-8; bad-UTF-8 cells as raw bytes). Returns N."""
    _check(n, malformed_rate)
    # surrogateescape writes U+DC80..U+DCFF back as the single raw bytes they stand for.
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(STAGING_COLUMNS)
        writer.writerows(_generate_values(n, seed, malformed_rate))
    return n
