"""``ask()`` latency on the seed collection after warm-up (the reader and the embedder loaded).

    python bench/bench_ask.py [--repeats 5]

Measures, in one run and interleaved question by question (so that a noisy neighbour slows
both alike):
- ``shipped``: the reader as shipped (int8, per-channel weights) reading MAX_WINDOWS windows;
- ``baseline``: the same reader weights in fp32 reading 4 windows, as before the int8 change;
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
from pathlib import Path

from common import ROOT, percentiles, save


def main() -> None:
    import qa
    import qa.answering as answering
    import qa.candidates as candidates
    from qa.reader import Reader
    from qa.slots import get_slot_finder
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

    slot_finder = get_slot_finder()
    configs = ("shipped", "baseline", "no_slots")

    def configure(name: str) -> None:
        reader, windows = (fp32_reader, 4) if name == "baseline" else (shipped_reader, shipped_windows)
        answering.get_reader = lambda: reader
        answering.get_slot_finder = (lambda: None) if name == "no_slots" else (lambda: slot_finder)
        candidates.MAX_WINDOWS = windows

    times: dict[str, list[float]] = {name: [] for name in (*configs, "retrieve")}
    for name in configs:
        configure(name)
        for r in rows[:3]:
            index.ask(r["question"], history=r["history"])  # warm-up
    for _ in range(args.repeats):
        for r in rows:
            for name in configs:
                configure(name)
                slot_finder.clear_cache()
                t0 = time.perf_counter()
                index.ask(r["question"], history=r["history"])
                times[name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            index.retrieve(r["question"])
            times["retrieve"].append(time.perf_counter() - t0)
    configure("shipped")
    shutil.rmtree(work)
    shipped, baseline, no_slots = (percentiles(times[name]) for name in configs)
    save("ask_latency", {
        "questions": len(rows), "repeats": args.repeats, "windows": shipped_windows,
        "ask": shipped, "baseline_fp32_4_windows": baseline, "without_slots": no_slots,
        "retrieve_alone": percentiles(times["retrieve"]),
        "p50_ratio_shipped_to_baseline": round(shipped["p50_ms"] / baseline["p50_ms"], 3),
        "p50_ratio_shipped_to_without_slots": round(shipped["p50_ms"] / no_slots["p50_ms"], 3),
    })


if __name__ == "__main__":
    main()
