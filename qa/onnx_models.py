"""Torch models exported once to ONNX and run with onnxruntime.

onnxruntime runs the reader with the same outputs as eager torch (to 1e-5 in fp32) and, with its
int8 copy, makes ``ask`` faster; the embedder's export is also fused (one Attention op per layer),
and its int8 copy builds an index 1.46x as fast as torch (BENCHMARKS.md). Nothing is downloaded: the ONNX file is exported here, from the weights
already on disk, and cached under ``QA_CACHE`` (default ``~/.cache/qa``) by a key that names
everything the graph depends on (the weights' digest, the export code's version, torch's version).
The export is written to a temporary name and renamed, so a crash mid-export leaves nothing half
written, and two processes exporting at once each end with a whole file.

Sentence-transformers' own ONNX backend needs ``optimum-onnx``, which requires transformers < 4.58
(this package runs transformers 5); the export is therefore done here, with torch's exporter.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import ModelError

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the export (graph inputs/outputs, opset) changes
OPSET = 17
# The reader's runtimes (``qa/reader.py``): "auto" is torch in bfloat16 where the CPU multiplies
# bfloat16 natively, onnxruntime elsewhere.
RUNTIMES = ("auto", "onnx", "torch", "torch-bf16")
# BERT's feed-forward output projections: the layers with the widest activation ranges, which
# int8 hurts most. The int8 copies keep them in fp32.
FFN_OUTPUT_MATMULS = r"layer\.\d+/output/dense/MatMul$"


def cache_dir() -> Path:
    """Where exported models are kept: ``QA_CACHE`` or ``~/.cache/qa``; a temp folder when
    neither can be written (a read-only home), so loading never fails for want of a cache."""
    base = Path(os.environ.get("QA_CACHE") or Path.home() / ".cache" / "qa") / "onnx"
    try:
        base.mkdir(parents=True, exist_ok=True)
        probe = base / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return base
    except OSError:
        fallback = Path(tempfile.gettempdir()) / f"qa-onnx-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        fallback.mkdir(parents=True, exist_ok=True)
        log.warning("cannot write %s: exported models go to %s", base, fallback)
        return fallback


def file_digest(paths: Sequence[str | Path]) -> str:
    """sha256 over the bytes of ``paths`` (in order) and their names."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def export_key(kind: str, digest: str, int8: bool = False, keep_fp32: Sequence[str] = (),
               fuse: "BertShape | None" = None) -> str:
    import onnxruntime
    import torch

    raw = (f"{kind}|{digest}|v{EXPORT_VERSION}|opset{OPSET}|torch{torch.__version__}|int8={int8}|fp32={sorted(keep_fp32)}"
           + (f"|fused={fuse}|ort{onnxruntime.__version__}" if fuse else ""))
    return f"{kind}-{hashlib.sha256(raw.encode()).hexdigest()[:20]}{'-int8' if int8 else ''}.onnx"


def _export(build: Callable, input_names: Sequence[str], output_names: Sequence[str],
            dynamic_axes: dict, path: Path) -> None:
    import torch

    module = build()
    module.eval()
    # Every model here takes int64 (batch, tokens) inputs; the sizes are traced as dynamic axes.
    example = tuple(torch.ones((2, 16), dtype=torch.long) for _ in input_names)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            # The TorchScript exporter warns about tracing details that do not apply to these graphs.
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, tmp, input_names=list(input_names), output_names=list(output_names),
                              dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass(frozen=True)
class BertShape:
    """What onnxruntime's transformer optimizer needs to fuse a BERT graph."""

    num_heads: int
    hidden_size: int


def _fuse(src: Path, path: Path, shape: BertShape) -> None:
    """onnxruntime's BERT fusions: one Attention op per layer (instead of a dozen MatMul, Softmax,
    Reshape... nodes), embeddings + LayerNorm, residual + LayerNorm, bias + GELU. The graph
    computes the same function (embeddings equal to 1e-6); fewer, larger kernels run faster."""
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(str(src), model_type="bert", num_heads=shape.num_heads, hidden_size=shape.hidden_size,
                           opt_level=1)
    stats = fused.get_fused_operator_statistics()
    if not stats.get("Attention"):
        log.warning("onnxruntime fused no attention in %s (%s): it runs unfused", src.name,
                    {k: v for k, v in stats.items() if v})
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        fused.save_model_to_file(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _quantize(src: Path, path: Path, keep_fp32: Sequence[str]) -> None:
    """Dynamic int8 (weights per output channel, activations per batch) for the MatMuls, but those
    whose node name matches one of the regular expressions ``keep_fp32``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude = [n.name for n in onnx.load(str(src)).graph.node
               if n.op_type == "MatMul" and any(re.search(k, n.name) for k in keep_fp32)]
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        logging.getLogger().disabled, was = True, logging.getLogger().disabled  # its "pre-process" advice
        try:
            # Fused graphs (onnxruntime's Attention op) have outputs shape inference cannot type:
            # they are float, as everything in these models is.
            quantize_dynamic(str(src), tmp, per_channel=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=exclude,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            logging.getLogger().disabled = was
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_export_lock = threading.Lock()


def exported(kind: str, digest: str, build: Callable, input_names: Sequence[str],
             output_names: Sequence[str], dynamic_axes: dict, int8: bool = False,
             keep_fp32: Sequence[str] = (), fuse: BertShape | None = None) -> Path:
    """The cached ONNX file for ``kind``/``digest``, exported from ``build()`` (a torch module)
    the first time it is asked for; with ``fuse``, after onnxruntime's BERT fusions (``build``
    must then give a graph they recognise: eager attention); with ``int8``, its dynamically
    quantized copy (the MatMuls matching a pattern of ``keep_fp32`` stay fp32)."""
    folder = cache_dir()
    path = folder / export_key(kind, digest, int8, keep_fp32 if int8 else (), fuse)
    with _export_lock:
        if path.exists():
            return path
        try:
            fp32 = folder / export_key(kind, digest, False, (), fuse)
            # The graph to fuse is built differently (eager attention): it has a name of its own.
            plain = fp32.with_suffix(".unfused.onnx") if fuse else fp32
            if not plain.exists():
                log.info("exporting %s to %s", kind, plain)
                _export(build, input_names, output_names, dynamic_axes, plain)
            if fuse and not fp32.exists():
                log.info("fusing %s to %s", kind, fp32)
                _fuse(plain, fp32, fuse)
            if int8:
                log.info("quantizing %s to %s", kind, path)
                _quantize(fp32, path, keep_fp32)
        except ModelError:
            raise
        except Exception as exc:  # the exporter's errors are many and internal
            raise ModelError(f"could not export the {kind} model to ONNX: {exc}") from exc
    return path


def _cpu_supports(feature: str) -> bool:
    """torch's own check of this CPU (``torch.cpu._is_<feature>_supported``): a private helper,
    absent in some torch builds, where the feature counts as missing."""
    import torch

    try:
        return bool(getattr(torch.cpu, f"_is_{feature}_supported")())
    except (AttributeError, RuntimeError):
        return False


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AMX or AVX512-BF16): there torch's
    bf16 kernels are about twice as fast as fp32; elsewhere they are emulated and slower."""
    return _cpu_supports("amx_tile") or _cpu_supports("avx512_bf16")


def cpu_matrix_units() -> tuple[bool, bool]:
    """(AMX, VNNI int8 dot products) on this CPU."""
    return _cpu_supports("amx_tile"), _cpu_supports("vnni")


class OnnxModel:
    """An onnxruntime session over an exported file; ``__call__`` takes and returns numpy arrays.
    A session may be run from several threads at once."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # Idle pool threads sleep instead of spinning: a spinning pool took the cores from the
        # reader that runs right after the query's embedding and made ``ask`` 1.8x slower
        # (BENCHMARKS.md); a batched build embeds as fast either way.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"could not load the ONNX model {path}: {exc}") from exc
        self.path = Path(path)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, dict(zip(self.input_names, arrays)))
