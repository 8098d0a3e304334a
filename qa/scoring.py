"""The answer scorer: P(answer is right) from a candidate's features, and the abstention threshold.

A logistic regression fitted the way ``ask`` reads (``scripts/answerer/train.py``); its weights,
feature names and threshold ship in ``qa/reader_model/answerer.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import ModelError
from .settings import AnswerSettings
from .text import sigmoid

DEFAULT_SCORER_FILE = AnswerSettings().scorer_file


class AnswerScorer:
    """P(right) = sigmoid(bias + sum of weight * feature); below ``threshold`` ``ask`` abstains."""

    def __init__(self, weights: dict[str, float], bias: float, threshold: float):
        self.weights, self.bias, self.threshold = weights, bias, threshold

    @classmethod
    def load(cls, path: str | Path = DEFAULT_SCORER_FILE) -> "AnswerScorer":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            return cls(dict(zip(data["features"], data["coef"])), data["intercept"], data["threshold"])
        except FileNotFoundError:
            raise ModelError(f"answer scorer not found: {path} (fit it with `python scripts/answerer/train.py`)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"answer scorer {path} is unreadable ({exc}); fit it again with `python scripts/answerer/train.py`") from exc

    def probability(self, features: dict[str, float]) -> float:
        z = self.bias + sum(w * features[name] for name, w in self.weights.items())
        return sigmoid(max(-30.0, min(30.0, z)))
