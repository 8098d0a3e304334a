"""``ask()`` latency on the seed collection after warm-up (the reader and the embedder loaded).

    python bench/bench_ask.py [--repeats 5]

Measures, in one run and interleaved question by question (so that a noisy neighbour slows
both alike):
- ``shipped``: the reader as shipped (int8, per-channel weights) reading MAX_WINDOWS windows;
- ``baseline``: the same reader weights in fp32 reading 4 windows, as before the int8 change;
- ``retrieve``: retrieval alone.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from common import ROOT, percentiles, save


def main() -> None:
    import qa
    import qa.answering as answering
    import qa.candidates as candidates
    from qa.reader import Reader
    from qa.store import sync

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [json.loads(l) for l in (ROOT / "tests" / "data" / "seed_questions.jsonl").read_text().splitlines() if l.strip()]
    work = Path(tempfile.mkdtemp(prefix="qa-bench-ask-"))
    sync(ROOT / "documents", work / "index")
    index = qa.Index.load(work / "index")
    shipped_reader, fp32_reader = Reader.load(), Reader.load(quantize=False)
    shipped_windows = candidates.MAX_WINDOWS

    def configure(name: str) -> None:
        reader, windows = (shipped_reader, shipped_windows) if name == "shipped" else (fp32_reader, 4)
        answering.get_reader = lambda: reader
        candidates.MAX_WINDOWS = windows

    times: dict[str, list[float]] = {"shipped": [], "baseline": [], "retrieve": []}
    for name in ("shipped", "baseline"):
        configure(name)
        for r in rows[:3]:
            index.ask(r["question"], history=r["history"])  # warm-up
    for _ in range(args.repeats):
        for r in rows:
            for name in ("shipped", "baseline"):
                configure(name)
                t0 = time.perf_counter()
                index.ask(r["question"], history=r["history"])
                times[name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            index.retrieve(r["question"])
            times["retrieve"].append(time.perf_counter() - t0)
    configure("shipped")
    shutil.rmtree(work)
    shipped, baseline = percentiles(times["shipped"]), percentiles(times["baseline"])
    save("ask_latency", {
        "questions": len(rows), "repeats": args.repeats, "windows": shipped_windows,
        "ask": shipped, "baseline_fp32_4_windows": baseline, "retrieve_alone": percentiles(times["retrieve"]),
        "p50_ratio_shipped_to_baseline": round(shipped["p50_ms"] / baseline["p50_ms"], 3),
    })


if __name__ == "__main__":
    main()
