"""The corpus scores a segment's passages in one pass over the segment, with the same answer as
scoring each passage on its own (`score_passage`), on the cases where the two could drift: a cue
cut in two by a long sentence's cut, a character whose lower case is longer, overlapping cues, and the
pieces the segment's scans pick for an expression ("@", a title's stem, a digit, Unicode digits too)."""

from __future__ import annotations

import random
import re

import pytest

from leadgen_core.enrich.corpus import (
    CUES,
    PASSAGE_CHARS,
    SENTENCE_END_RE,
    _name_words,
    _placed_pieces,
    _score_segment,
    score_passage,
)

WORDS = [*CUES, "Acme", "robots", "the", "of", "team", "Founder", "Head of Sales", "jane@acme.test", "+65 6123 4567",
         "2004.", "İstanbul", "office.", "Call", "us", "ß", "Managing Director", "quality", "x" * 30,
         "CFOwner", "a@b", "@@", "٣٤٥ ٦٧٨", "1234", "Head", "of", "Chief Sales Officer"]  # fmt: skip


def _segment(rng: random.Random, words: int) -> str:
    out = []
    for _ in range(words):
        word = rng.choice(WORDS)
        out.append(word.capitalize() if rng.random() < 0.2 else word)
        if rng.random() < 0.08:
            out[-1] += rng.choice([".", "!", "?"])
    return " ".join(out)


@pytest.mark.parametrize("seed", range(80))
def test_segment_scores_equal_scoring_each_passage(seed: int) -> None:
    rng = random.Random(seed)
    segment = _segment(rng, rng.choice([5, 60, 400, 1500]))
    if seed % 4 == 0:
        segment = segment.replace("İstanbul", "Istanbul")  # lower case keeps the length: the one-pass path
    names = _name_words(rng.choice(["Acme Robots Pte. Ltd.", "The Team Office Co", "Pte Ltd"]))
    placed = _placed_pieces(segment)
    assert all(segment[at : at + len(piece)] == piece for at, piece in placed)
    assert all(len(piece) <= PASSAGE_CHARS for _, piece in placed)
    assert _score_segment(segment, placed, names) == [score_passage(p, name_words=names) for _, p in placed]


def test_a_cue_cut_in_two_counts_in_neither_piece() -> None:
    segment = "a" * 13 + " " + "word " * 96 + "team of experts"  # the cut falls inside "team of"
    placed = _placed_pieces(segment)
    assert len(placed) == 2
    assert _score_segment(segment, placed, frozenset()) == [score_passage(p, name_words=None) for _, p in placed]


@pytest.mark.parametrize("seed", range(20))
def test_sentence_gaps_are_those_of_the_look_behind_form(seed: int) -> None:
    # SENTENCE_END_RE matches from the punctuation (fast to scan); its gap is the look-behind form's match
    look_behind = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
    rng = random.Random(seed)
    text = "".join(
        rng.choice(["a", "B", "7", ".", "!", "?", " ", "\n", "  ", '"', "'", "é", "\u00a0"]) for _ in range(3000)
    )
    assert [m.span(1) for m in SENTENCE_END_RE.finditer(text)] == [m.span() for m in look_behind.finditer(text)]


def _drop_repeats_by_definition(pages: list[tuple[str, str]], shingle: int) -> list[tuple[str, list[str]]]:
    """`drop_repeats` as its docstring says it: a word is dropped when a run of SHINGLE words holding
    it was seen on an earlier page (runs as tuples, seen pages in a set); the rest, joined by spaces."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for label, text in pages:
        words = text.split()
        runs = [tuple(words[i : i + shingle]) for i in range(len(words) - shingle + 1)]
        dropped = [False] * len(words)
        for i, run in enumerate(runs):
            if run in seen:
                for j in range(i, i + shingle):
                    dropped[j] = True
        seen.update(runs)
        segments, current = [], []
        for word, drop in zip(words, dropped, strict=True):
            if drop:
                if current:
                    segments.append(" ".join(current))
                current = []
            else:
                current.append(word)
        if current:
            segments.append(" ".join(current))
        out.append((label, segments))
    return out


@pytest.mark.parametrize("seed", range(60))
def test_repeats_dropped_as_defined(seed: int) -> None:
    # drop_repeats finds a site's repeated runs with one sort of every page's keys; the pages share
    # boilerplate blocks, repeat runs of their own (kept: only an earlier page's runs are repeats),
    # and are empty, shorter than a run, or split on Unicode blanks
    from leadgen_core.enrich.corpus import drop_repeats

    rng = random.Random(seed)
    vocabulary = ["menu", "home", "about", "contact", "cookies", "accept", "Acme", "robots", "team", "the",
                  "of", "ß", "İstanbul", "jane@acme.test"][: rng.choice([3, 6, 14])]  # fmt: skip
    blocks = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 30))) for _ in range(4)]
    pages = []
    for i in range(rng.randint(0, 6)):
        parts = [rng.choice(blocks) if rng.random() < 0.5 else " ".join(rng.choice(vocabulary) for _ in range(
            rng.randint(0, 40))) for _ in range(rng.randint(0, 6))]  # fmt: skip
        pages.append((f"page{i}", rng.choice([" ", "\n", "\u00a0", "\t\u3000 "]).join(parts)))
    shingle = rng.choice([1, 2, 3, 8])
    assert drop_repeats(pages, shingle=shingle) == _drop_repeats_by_definition(pages, shingle)
