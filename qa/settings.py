"""Typed settings of the answering pipeline: every knob of ``ask`` in one place, with its default."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

# A question or query longer than this is cut: the reader reads 64 word pieces of a question,
# the embedder 256 and BM25 its first 1,024 terms, so nothing further changes an answer.
MAX_QUESTION_CHARS = 1000
MAX_QUERY_CHARS = 20_000


@dataclass(frozen=True)
class AnswerSettings:
    """How ``ask`` reads the retrieved passages.

    - ``max_windows``: reading windows read per question; the reader's cost grows with the word
      pieces it reads, so this bounds ``ask`` latency.
    - ``window_chars``: a window is the best sentence of a passage grown with its neighbours up to
      this many characters (about 100 word pieces).
    - ``short_paragraph_chars``: a window still this short (a headline, a dateline) takes the
      paragraphs around it.
    - ``spans_per_window``: the reader's best spans kept per window.
    - ``max_alternatives``: answers from other articles shown beside the best one.
    - ``use_parser``: find answer slots with spaCy's parse (``qa/slots.py``).
    - ``repair_glue``: space words the source glued ("DeputyChairman") in what the reader and the
      parser read (``qa/repair.py``); answers still quote the article as written.
    - ``reader_dir`` / ``scorer_file``: the shipped reader and answer scorer.
    - ``quantize``: run the reader's Linear layers in int8 (None: as its config says).
    - ``reader_runtime``: ``"auto"`` (torch in bfloat16 where the CPU multiplies bfloat16
      natively, e.g. with AMX; onnxruntime elsewhere), ``"onnx"`` (onnxruntime, from an export
      cached on first use), ``"torch"`` (eager fp32) or ``"torch-bf16"``: onnx and torch give the
      same logits to within 1e-4, bfloat16 to within about 0.05 (``qa/reader.py``).
    """

    max_windows: int = 3
    window_chars: int = 480
    short_paragraph_chars: int = 150
    spans_per_window: int = 5
    max_alternatives: int = 3
    use_parser: bool = True
    repair_glue: bool = True
    reader_dir: Path = PACKAGE_DIR / "reader_model"
    scorer_file: Path = PACKAGE_DIR / "reader_model" / "answerer.json"
    quantize: bool | None = None
    reader_runtime: str = "auto"

    def __post_init__(self) -> None:
        from .onnx_models import RUNTIMES

        if self.reader_runtime not in RUNTIMES:
            raise ValueError(f"reader_runtime must be one of {RUNTIMES}, got {self.reader_runtime!r}")
        for name in ("max_windows", "window_chars", "spans_per_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
