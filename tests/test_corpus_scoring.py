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
