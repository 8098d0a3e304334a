"""Words glued together by a scraper ("DeputyChairman", "pressservice", "shouldbecome"), spaced
for reading, with every offset mapped back to the article.

The reader and the parser read a repaired copy of a reading window; the spans they find are
mapped back, so citations still quote the article exactly ("DeputyChairman" stays as written).
Only spaces are inserted, never a character changed or removed, so mapping back is exact.

A word is split when
- a lower-case letter is followed by a capital inside it ("DeputyChairman", "JomartTokayev",
  "ofState"), after at least two letters (so "McDonald" and "iPhone" stay whole); or
- it is a lower-case word of 7 letters or more that the reader's vocabulary does not know, nor
  its stem ("tackling" is "tackle" + "ing"), and it splits into two words the vocabulary knows,
  of 3 letters or more, or "of", "to", "in", "at", "by" first ("pressservice", "thegovernment",
  "effectivelyguard", "ofgovernment").
A compound the vocabulary lacks ("videoconference") is split as well: the reader then reads two
words, and the answer still quotes the article as written.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from .types import Span

if TYPE_CHECKING:
    from .reader import ReaderResult

_CAMEL = re.compile(r"(?<=[a-z]{2})(?=[A-Z][a-z])")
_LOWER_WORD = re.compile(r"\b[a-z]{7,}\b")
_SHORT_FIRST = frozenset({"of", "to", "in", "at", "by"})  # "ofthe", "tothe": two-letter words that glue
_SUFFIXES = ("ing", "ed", "es", "s", "ly", "er", "ers", "able", "ment", "ments", "ation", "ations", "ness", "ity")


@dataclass(frozen=True)
class Repaired:
    """``text`` with spaces inserted at ``inserted`` (offsets into the original, ascending)."""

    original: str
    text: str
    inserted: tuple[int, ...]

    def to_original(self, offset: int) -> int:
        """The original offset of repaired ``offset`` (a span's start or end)."""
        # Each space inserted before ``offset`` shifts it by one; an offset at an inserted space
        # maps to the word boundary it stands for.
        k = bisect.bisect_right(self._repaired_positions, offset - 1)
        return offset - k

    def to_repaired(self, offset: int) -> int:
        """The repaired offset of original ``offset``."""
        return offset + bisect.bisect_left(self.inserted, offset + 1) if self.inserted else offset

    @classmethod
    def as_written(cls, text: str) -> "Repaired":
        return cls(text, text, ())

    def span_to_repaired(self, span: tuple[int, int]) -> tuple[int, int]:
        return self.to_repaired(span[0]), self.to_repaired(span[1] - 1) + 1

    def span_to_original(self, span: Span) -> Span:
        # An end counts the spaces inserted before it, so "Deputy " (ending on a space) maps to "Deputy".
        start, end = self.to_original(span.start), self.to_original(span.end)
        return replace(span, text=self.original[start:end], start=start, end=end)

    def result_to_original(self, result: "ReaderResult") -> "ReaderResult":
        """The reader's result on ``text`` with every span in the original's offsets and words."""
        if not self.inserted:
            return result
        return replace(result, spans=[self.span_to_original(s) for s in result.spans],
                       proposed=[self.span_to_original(s) if s is not None else None for s in result.proposed])

    @cached_property
    def _repaired_positions(self) -> tuple[int, ...]:
        # Where the inserted spaces stand in the repaired text.
        return tuple(pos + i for i, pos in enumerate(self.inserted))


class GlueRepairer:
    """Finds glued words with a vocabulary of whole words (the reader's tokenizer's)."""

    def __init__(self, vocabulary: frozenset[str]):
        self.vocabulary = vocabulary
        self._split = lru_cache(maxsize=4096)(self._split_uncached)

    @classmethod
    def for_tokenizer(cls, tokenizer) -> "GlueRepairer":
        return cls(frozenset(w for w in tokenizer.get_vocab() if w.isalpha() and w.islower()))

    def repair(self, text: str) -> Repaired:
        cuts = [m.start() for m in _CAMEL.finditer(text)]
        for m in _LOWER_WORD.finditer(text):
            at = self._split(m.group(0))
            if at:
                cuts.append(m.start() + at)
        if not cuts:
            return Repaired(text, text, ())
        cuts.sort()
        pieces, last = [], 0
        for c in cuts:
            pieces.append(text[last:c])
            last = c
        pieces.append(text[last:])
        return Repaired(text, " ".join(pieces), tuple(cuts))

    def _known(self, word: str) -> bool:
        if word in self.vocabulary:
            return True
        for suffix in _SUFFIXES:
            stem = word[: -len(suffix)]
            if word.endswith(suffix) and len(stem) >= 3 and (
                    stem in self.vocabulary or stem + "e" in self.vocabulary or
                    (len(stem) > 3 and stem[-1] == stem[-2] and stem[:-1] in self.vocabulary) or
                    (stem.endswith("i") and stem[:-1] + "y" in self.vocabulary)):
                return True
        return False

    def _split_uncached(self, word: str) -> int:
        """Where to split ``word`` (0: leave it whole): the split whose shorter part is longest."""
        if self._known(word):
            return 0
        best, best_len = 0, 0
        for i in range(2, len(word) - 2):
            a, b = word[:i], word[i:]
            if ((len(a) >= 3 or a in _SHORT_FIRST) and len(b) >= 3 and a in self.vocabulary and self._known(b)
                    and min(len(a), len(b)) > best_len):
                best, best_len = i, min(len(a), len(b))
        return best
