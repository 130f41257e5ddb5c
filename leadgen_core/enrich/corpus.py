"""The extraction corpus: a site's text without its boilerplate, its most relevant passages first.

Sending the first EXTRACT_CORPUS_CHAR_LIMIT characters of a crawl pays for the same menu, cookie
banner and footer once per page, and on a real site (pages of 2,000–25,000 characters) cuts the
team and contact pages off the end. So the corpus is built in three steps:

1. **Pages.** The crawl's corpus is split back into its pages (`# <url>` headers); Tavily texts
   are pages of their own.
2. **Repeats dropped.** A run of SHINGLE_WORDS words already seen on an earlier page is boilerplate
   (menu, cookie text, footer, a Tavily copy of the same page): only its first occurrence stays,
   so a fact that the footer repeats on every page is still sent once.
3. **Relevant passages within a budget.** Each page is cut into passages (sentences, long runs in
   PASSAGE_CHARS pieces) scored by what the extraction asks for: email addresses, phone numbers,
   job titles next to names, and cue words (founded, employees, products, headquarters…), plus
   the opening of the first page (the company's own description). Passages that score are kept,
   best first, until `token_budget` tokens (CHARS_PER_TOKEN characters each) are used, and are
   sent in their original order under their page's label. Passages that score nothing (the
   marketing copy) are not sent, unless nothing scores at all: then the opening passages are.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import compress, count

import numpy as np

SHINGLE_WORDS = 8
PASSAGE_CHARS = 500
CHARS_PER_TOKEN = 4  # English prose averages ~4 characters a token (OpenAI tokenizer guide)
# A page header is a line "# <url>": found as "\n# <url>" in "\n" + text (a literal prefix the
# expression engine scans for ~10x faster than a MULTILINE "^"; the same matches: tests/test_extract_quality.py)
PAGE_HEADER_RE = re.compile(r"\n# (\S+)(?=\n)")
# the gap after a sentence (group 1): blanks after ".", "!" or "?" before a capital, digit or quote. Matched
# from its punctuation, not with a look-behind: the engine then skips to the next ".!?" (3x faster)
SENTENCE_END_RE = re.compile(r"[.!?](\s+)(?=[A-Z0-9\"'])")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE_RE = re.compile(r"(?:\+\d{1,3}[\s-]?)?\(?\d{3,4}\)?[\s-]?\d{3,4}[\s-]?\d{0,4}")
TITLE_RE = re.compile(
    r"\b(?:Founder|Co-Founder|Owner|CEO|CTO|COO|CFO|Chief \w+ Officer|Managing Director|Director|"
    r"Head of \w+|\w+ Manager|Partner|President|Chairman)\b"
)
# Every alternative of TITLE_RE contains one of these (case-sensitive, as TITLE_RE is).
TITLE_STEMS = ("Founder", "Owner", "CEO", "CTO", "COO", "CFO", "Chief", "Director", "Head of", "Manager", "Partner",
               "President", "Chairman")  # fmt: skip
TITLE_STEM_RE = re.compile("|".join(map(re.escape, TITLE_STEMS)))  # one C scan, not 13 `in` tests
DIGIT_RE = re.compile(r"\d")
DIGITS_RE = re.compile(r"\d+")
CUES = (
    "founded", "established", "since", "employees", "staff", "team of", "specialists", "products",
    "services include", "we offer", "we provide", "specialising", "specializing", "headquarter",
    "address", "office", "contact", "email", "call us", "industry", "customers in",
)  # fmt: skip
OPENING_BONUS = 3.0
_SHINGLE_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier (golden ratio)
CRAWL_LABEL = "crawl"


@dataclass(frozen=True)
class Passage:
    page: int
    order: int
    text: str
    score: float


def split_pages(label: str, text: str) -> list[tuple[str, str]]:
    """A crawl corpus ("# <url>\\n<text>" blocks) as (url, text) pages; any other text is one page."""
    # in "\n" + text a match's start is its "#"'s offset in TEXT, and its end the offset after its "\n"
    heads = [(m.start(), m.end(), m.group(1)) for m in PAGE_HEADER_RE.finditer("\n" + text)]
    if not heads:
        return [(label, text)]
    first = heads[0][0]
    pages = [(label, text[:first])] if text[:first].strip() else []
    for (_, body, url), nxt in zip(heads, [*heads[1:], None], strict=True):
        end = nxt[0] if nxt is not None else len(text)
        pages.append((url, text[body:end]))
    return pages


def _shingle_keys(words: list[str], shingle: int) -> np.ndarray:
    """One 64-bit key per run of SHINGLE consecutive words (a polynomial over the words' hashes).

    Vectorised: a page of 15,000 words costs one `map(hash, ...)` and SHINGLE array operations,
    where a tuple per position cost ~1.5 ms (the corpus was the extraction stage's largest CPU
    cost). Two different runs share a key with probability ~2**-64."""
    count = len(words) - shingle + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    hashes = np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)
    keys = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(shingle):
            keys = keys * _SHINGLE_BASE + hashes[k : k + count]
    return keys


def _first_seen_later(keys: list[np.ndarray]) -> np.ndarray:
    """For every key of every page (KEYS, the pages in order, concatenated), whether an earlier page
    has it too.

    One stable sort of all the site's keys: within a run of equal keys the first is the earliest
    page's, and a key is a repeat when that page comes before its own. A page repeating a run of its
    own is not a repeat (a Python set grown page by page gave the same answer for ~40% more CPU:
    a list of ints and a set probe for every key)."""
    sizes = [len(k) for k in keys]
    repeated = np.zeros(sum(sizes), dtype=bool)
    if len(keys) < 2 or not len(repeated):
        return repeated
    flat = np.concatenate(keys)
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    run_start = np.empty(len(flat), dtype=bool)
    run_start[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=run_start[1:])
    page = np.repeat(np.arange(len(keys)), sizes)[order]
    first_page = page[run_start][np.cumsum(run_start) - 1]
    repeated[order] = first_page < page
    return repeated


def drop_repeats(pages: list[tuple[str, str]], *, shingle: int = SHINGLE_WORDS) -> list[tuple[str, list[str]]]:
    """Each page's text as segments, without word runs an earlier page already had."""
    words_of = [text.split() for _, text in pages]
    keys = [_shingle_keys(words, shingle) for words in words_of]
    repeated_all = _first_seen_later(keys)
    out: list[tuple[str, list[str]]] = []
    at = 0
    for (label, _), words, page_keys in zip(pages, words_of, keys, strict=True):
        size = len(page_keys)
        repeated = repeated_all[at : at + size]
        at += size
        # word j is dropped when a repeated run starts within (j - shingle, j]
        starts = np.concatenate(([0], np.cumsum(repeated, dtype=np.int64)))
        positions = np.arange(len(words))
        high = np.minimum(positions + 1, size)
        low = np.clip(positions - shingle + 1, 0, size)
        kept = (starts[high] - starts[low]) == 0
        edges = np.flatnonzero(np.diff(np.concatenate(([0], kept.astype(np.int8), [0]))))
        segments = [" ".join(words[a:b]) for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True)]
        out.append((label, segments))
    return out


def _placed_pieces(segment: str) -> list[tuple[int, str]]:
    """SEGMENT's passages (sentences, long ones cut at a space near PASSAGE_CHARS), each with its
    offset in SEGMENT."""
    pieces: list[tuple[int, str]] = []
    at = 0
    for gap in (*SENTENCE_END_RE.finditer(segment), None):
        end = gap.start(1) if gap is not None else len(segment)
        sentence = segment[at:end]
        while len(sentence) > PASSAGE_CHARS:
            cut = sentence.rfind(" ", 0, PASSAGE_CHARS)
            cut = cut if cut > PASSAGE_CHARS // 2 else PASSAGE_CHARS
            pieces.append((at, sentence[:cut]))
            rest = sentence[cut:]
            sentence = rest.lstrip()
            at += cut + len(rest) - len(sentence)
        if sentence.strip():
            pieces.append((at, sentence))
        if gap is not None:
            at = gap.end(1)
    return pieces


def _found_in(
    lowered: str, needles: tuple[str, ...] | frozenset[str], starts: list[int], ends: list[int]
) -> dict[int, set[str]]:
    """For each piece (its span STARTS[i]..ENDS[i] in LOWERED) that holds any, the NEEDLES wholly
    inside it (pieces without one are absent).

    One `str.find` scan of the segment per needle, instead of one substring test per needle and
    passage: the same answer as `needle in piece` for every piece."""
    found: dict[int, set[str]] = {}
    for needle in needles:
        at = lowered.find(needle)
        while at >= 0:
            i = bisect_right(starts, at) - 1
            if i >= 0 and at + len(needle) <= ends[i]:
                found.setdefault(i, set()).add(needle)
            at = lowered.find(needle, at + 1)
    return found


def _overlapped(spans: Iterable[tuple[int, int]], starts: list[int], ends: list[int]) -> set[int]:
    """The pieces (spans STARTS[i]..ENDS[i] of a segment) that some of SPANS (start, end) overlaps."""
    hit: set[int] = set()
    for start, end in spans:
        i = bisect_right(starts, start) - 1
        if i >= 0 and end <= ends[i]:  # within one piece: nearly every span
            hit.add(i)
            continue
        last = bisect_right(starts, end - 1) - 1
        hit.update(j for j in range(max(0, i), last + 1) if start < ends[j] and end > starts[j])
    return hit


def _char_spans(segment: str, char: str) -> Iterator[tuple[int, int]]:
    at = segment.find(char)
    while at >= 0:
        yield at, at + 1
        at = segment.find(char, at + 1)


def _digit_spans(segment: str) -> Iterable[tuple[int, int]]:
    """Where SEGMENT's digits are: of an ASCII segment found over its bytes (a scan for \\d with
    the expression engine was the corpus's slowest step), else the engine's runs of \\d."""
    if segment.isascii():
        codes = np.frombuffer(segment.encode("ascii"), dtype=np.uint8)
        return ((at, at + 1) for at in np.flatnonzero((codes >= ord("0")) & (codes <= ord("9"))).tolist())
    return (m.span() for m in DIGITS_RE.finditer(segment))


def _score_segment(segment: str, placed: list[tuple[int, str]], name_words: frozenset[str]) -> list[float]:
    """`score_passage` of each of PLACED (pieces of SEGMENT with their offsets), with every test
    made once over the segment: the substring tests (cues, the company's name words) find what
    each piece holds, and the cheap tests that admit a regular expression (an "@", a title's
    stem, a digit) find the few pieces worth running it on. The marketing copy that holds none
    of them, most pieces, costs no per-piece work at all."""
    lowered = segment.lower()
    if len(lowered) != len(segment):  # a character whose lower case is longer: offsets would drift
        return [score_passage(piece, name_words=name_words) for _, piece in placed]
    starts = [at for at, _ in placed]
    ends = [at + len(piece) for at, piece in placed]
    scores = [0.0] * len(placed)
    for i, held in _found_in(lowered, CUES, starts, ends).items():
        scores[i] += min(3, len(held))
    if name_words:
        for i in _found_in(lowered, name_words, starts, ends):
            scores[i] += 1.0
    # the pieces an expression could match in: every occurrence of a title's stem overlaps a match of
    # the scan (it takes the leftmost match at each position it reaches), and an "@" or a digit is one
    for i in _overlapped(_char_spans(segment, "@"), starts, ends):
        scores[i] += 4.0 * min(3, len(EMAIL_RE.findall(placed[i][1])))
    for i in _overlapped((m.span() for m in TITLE_STEM_RE.finditer(segment)), starts, ends):
        scores[i] += 3.0 * min(3, len(TITLE_RE.findall(placed[i][1])))
    for i in _overlapped(_digit_spans(segment), starts, ends):
        scores[i] += 2.0 if PHONE_RE.search(placed[i][1]) else 0.0
    return scores


def score_passage(text: str, *, name_words: frozenset[str]) -> float:
    """How much of what the extraction asks for TEXT holds.

    Each regular expression runs only when a cheap substring test says it can match (an "@" for
    an address, a digit for a phone number, a title's stem for a title): most passages are
    marketing copy, and the expressions were most of the corpus's CPU."""
    lowered = text.lower()
    score = 4.0 * min(3, len(EMAIL_RE.findall(text))) if "@" in text else 0.0
    if TITLE_STEM_RE.search(text):
        score += 3.0 * min(3, len(TITLE_RE.findall(text)))
    score += 2.0 if DIGIT_RE.search(text) and PHONE_RE.search(text) else 0.0
    score += min(3, sum(cue in lowered for cue in CUES))
    score += 1.0 if name_words and any(w in lowered for w in name_words) else 0.0
    return score


def _name_words(company: str) -> frozenset[str]:
    stop = {"pte", "ltd", "pte.", "ltd.", "the", "and", "private", "limited", "company", "co"}
    return frozenset(w for w in re.findall(r"[a-z0-9]+", company.lower()) if len(w) > 2 and w not in stop)


def build_corpus(parts: list[tuple[str, str]], *, token_budget: int, char_limit: int, company: str = "") -> str:
    """The labelled corpus of PARTS within TOKEN_BUDGET tokens (and CHAR_LIMIT characters)."""
    pages: list[tuple[str, str]] = []
    for label, text in parts:  # only the crawl's corpus has "# <url>" page headers; Tavily's markdown may not
        pages += split_pages(label, text) if label == CRAWL_LABEL else [(label, text)]
    pages = [page for page in pages if page[1].strip()]
    names = _name_words(company)
    room = min(token_budget * CHARS_PER_TOKEN, char_limit)
    scored: list[Passage] = []  # only passages that score: most are marketing copy, never sent
    opening: list[Passage] = []  # the passages in order while they fit the room: the fallback below
    opening_room = room
    order = 0
    for index, (_, segments) in enumerate(drop_repeats(pages)):
        for segment in segments:
            placed = _placed_pieces(segment)
            scores = _score_segment(segment, placed, names)
            if order == 0 and index == 0 and scores:
                scores[0] += OPENING_BONUS  # the company's own opening words: its description
            scored += [Passage(index, order + i, placed[i][1], scores[i]) for i in compress(count(), scores)]  # > 0
            i = 0
            while opening_room >= 0 and i < len(placed):
                piece = placed[i][1]
                if len(piece) + 1 <= opening_room:
                    opening.append(Passage(index, order + i, piece, scores[i]))
                    opening_room -= len(piece) + 1
                else:
                    opening_room = -1  # the first passage that does not fit ends the opening text
                i += 1
            order += len(placed)
    kept: list[Passage] = []
    for passage in sorted(scored, key=lambda p: (-p.score, p.order)):
        if len(passage.text) + 1 <= room:
            kept.append(passage)
            room -= len(passage.text) + 1
    if not kept:  # nothing looks like a fact (a bare search snippet, say): the opening text, in order
        kept = opening
    blocks: list[str] = []
    for index, (label, _) in enumerate(pages):
        texts = [p.text for p in sorted(kept, key=lambda p: p.order) if p.page == index]
        if texts:
            blocks.append(f"# {label}\n" + "\n".join(texts))
    return "\n\n".join(blocks)[:char_limit]
