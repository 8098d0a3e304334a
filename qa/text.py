"""Small text and number helpers shared by the indexing and answering halves."""
from __future__ import annotations

import math
import re
import string
from datetime import date as _date

# Month names, January first: dates in articles ("19 February 2016") and answers of the date kind.
MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
               "november", "december")


def date_number(date: str | None) -> int:
    """An ISO date ("2019-07-26", or with a time after it) as the integer 20190726; 0 for none:
    how the store and the lexical index keep dates, so that a date filter compares numbers."""
    return int(date[:10].replace("-", "")) if date else 0


def sigmoid(x: float) -> float:
    """1 / (1 + e^-x), without overflow for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def logit(p: float, eps: float = 1e-4) -> float:
    """The inverse of ``sigmoid``, with ``p`` kept within [eps, 1 - eps]."""
    p = min(max(p, eps), 1 - eps)
    return math.log(p / (1 - p))


def iso_date(value: str) -> str | None:
    """``value`` as an ISO date (YYYY-MM-DD) if it is a valid one, else None."""
    try:
        return _date.fromisoformat(str(value)).isoformat()
    except ValueError:
        return None


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (official SQuAD)."""

    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))
