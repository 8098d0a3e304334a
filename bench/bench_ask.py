"""``ask()`` latency on the seed collection after warm-up (the reader and the embedder loaded).

    python bench/bench_ask.py [--repeats 5]

Measures, in one run and interleaved question by question (so that a noisy neighbour slows
all alike), one ``Answerer`` per configuration over the same retriever:
- ``shipped``: the shipped settings (runtime "auto": the reader in torch bfloat16 on a CPU with
  native bfloat16, in onnxruntime elsewhere; ``max_windows`` windows, with slots);
- ``torch``: the same reader in eager torch fp32, as before onnxruntime (the baseline of the ratio);
- ``onnx_fp32``: the same reader in onnxruntime fp32 (the shipped path on a CPU without bfloat16);
- ``onnx_int8``: its int8 copy in onnxruntime (the path shipped until session 10);
- ``no_slots``: as shipped, but without answer slots (no dependency parse; ``qa/slots.py``);
- ``retrieve``: retrieval alone.

The parses of answer slots are cached; the cache is cleared before every timed question, so that
each pays for its own parses as a new question would.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import ROOT, percentiles, save


def main() -> None:
    import qa
    from qa import models
    from qa.answering import Answerer
    from qa.store import sync

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [json.loads(l) for l in (ROOT / "tests" / "data" / "seed_questions.jsonl").read_text().splitlines() if l.strip()]
    work = Path(tempfile.mkdtemp(prefix="qa-bench-ask-"))
    sync(ROOT / "documents", work / "index")
    index = qa.Index.load(work / "index")
    settings = index.settings
    slot_parser = models.parser()
    answerers = {  # built from settings exactly as ``Index.ask`` builds its own
        "shipped": Answerer.from_settings(index.retriever, settings),
        "torch": Answerer.from_settings(index.retriever, replace(settings, reader_runtime="torch", quantize=False)),
        "onnx_fp32": Answerer.from_settings(index.retriever, replace(settings, reader_runtime="onnx", quantize=False)),
        "onnx_int8": Answerer.from_settings(index.retriever, replace(settings, reader_runtime="onnx", quantize=True)),
        "no_slots": Answerer.from_settings(index.retriever, replace(settings, use_parser=False)),
    }

    times: dict[str, list[float]] = {name: [] for name in (*answerers, "retrieve")}
    for answerer in answerers.values():
        answerer.warm_up()
        for r in rows[:3]:
            answerer.ask(r["question"], history=r["history"])
    for _ in range(args.repeats):
        for r in rows:
            for name, answerer in answerers.items():
                slot_parser.clear_cache()
                t0 = time.perf_counter()
                answerer.ask(r["question"], history=r["history"])
                times[name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            index.retrieve(r["question"])
            times["retrieve"].append(time.perf_counter() - t0)
    shutil.rmtree(work)
    shipped, torch_fp32, onnx_fp32, onnx_int8, no_slots = (percentiles(times[name]) for name in answerers)
    save("ask_latency", {
        "questions": len(rows), "repeats": args.repeats, "windows": settings.max_windows,
        "runtime": settings.reader_runtime, "reader_model": type(answerers["shipped"].reader.model).__name__,
        "reader_quantize": settings.quantize,
        "ask": shipped, "baseline_torch_fp32": torch_fp32, "onnx_fp32": onnx_fp32, "onnx_int8": onnx_int8,
        "without_slots": no_slots,
        "retrieve_alone": percentiles(times["retrieve"]),
        "p50_ratio_shipped_to_torch": round(shipped["p50_ms"] / torch_fp32["p50_ms"], 3),
        "p50_ratio_onnx_fp32_to_torch": round(onnx_fp32["p50_ms"] / torch_fp32["p50_ms"], 3),
        "p50_ratio_onnx_int8_to_torch": round(onnx_int8["p50_ms"] / torch_fp32["p50_ms"], 3),
        "p50_ratio_shipped_to_without_slots": round(shipped["p50_ms"] / no_slots["p50_ms"], 3),
    })


if __name__ == "__main__":
    main()
