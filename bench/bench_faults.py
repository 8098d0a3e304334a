"""Fault and load benchmark of issue 12: the real app and the real CLI, in temporary folders.

    python bench/bench_faults.py                       # everything, at the sizes of the issue
    python bench/bench_faults.py --only clients,update --trials 3 --questions-per-client 4

Parts (``--only``, comma-separated):
- ``kill``: ``kill -9`` of ``python -m qa index`` at a random moment of an update adding
  ``--kill-articles`` BBC articles; after each, the index must load and hold either the old or
  the new collection (never a mix), and the next update must leave no leftover generation;
- ``clients``: 1/4/16/32 concurrent clients asking a running ``app.py`` (``--route``) over the
  seed collection: ok, p50, p95, answers/s;
- ``update``: ``/ask`` latency while the app embeds an upload of about 650 chunks (a JSONL of
  ``--update-articles`` BBC articles, uploaded and indexed through the Documents tab's handler
  with the admin token, as a browser does);
- ``badfiles``: a corpus of bad files beside the seed articles: files tried, skipped, indexed;
- ``memory``: the app's peak resident memory (VmHWM) after ``--memory-questions`` questions.

Results: bench/results/faults.json, and a markdown summary on stdout for BENCHMARKS.md.
Timings depend on what else runs on the machine: say so when reporting them.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import EVALDATA, ROOT, percentiles, require, save

SEED = ROOT / "documents"
QUESTIONS = [json.loads(line)["question"] for line in (ROOT / "tests" / "data" / "seed_questions.jsonl").read_text().splitlines()
             if line.strip()]
TOKEN = "bench-admin-token"


# ---- helpers --------------------------------------------------------------------------------
def bbc_records(limit: int, offset: int = 0) -> list[dict]:
    out = []
    with open(require(EVALDATA / "bbc-news" / "bbc_news.jsonl"), encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i < offset:
                continue
            if len(out) >= limit:
                break
            r = json.loads(line)
            out.append({"id": "bbc_" + r["id"].replace("/", "_"), "title": r["title"], "text": r["text"]})
    return out


def write_articles(folder: Path, records: list[dict]) -> None:
    for r in records:
        (folder / f"{r['id']}.txt").write_text(f"{r['title']}\n\n{r['text']}", encoding="utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """``app.py`` in a subprocess over ``docs`` and ``index``, with the admin token set."""

    def __init__(self, docs: Path, index: Path, log: Path, concurrency: int | None = None, route: str = "api"):
        self.route = route
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(self.port), "--index", str(index),
               "--documents", str(docs)]
        if concurrency:
            cmd += ["--ask-concurrency", str(concurrency)]
        self._out = open(log, "w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                                          "QA_ADMIN_TOKEN": TOKEN})
        deadline = time.monotonic() + 600
        while "Index ready" not in log.read_text() and "Index NOT loaded" not in log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"app did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)

    def ask(self, question: str) -> tuple[bool, float, str]:
        return ask(self.url, question, self.route)

    def memory(self) -> dict:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return {k: int(values[k].split()[0]) // 1024 for k in ("VmHWM", "VmRSS")}  # MiB

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._out.close()


_clients = threading.local()


def http_client():
    """This thread's HTTP client: connections are kept open between calls, as a real client
    keeps them (a new client per call costs tens of ms of TLS set-up on the benchmark's side)."""
    import httpx

    if not hasattr(_clients, "client"):
        _clients.client = httpx.Client()
    return _clients.client


def ask(url: str, question: str, route: str = "api", timeout: float = 300) -> tuple[bool, float, str]:
    """One question over HTTP: (ok, seconds, answer text or error). ``route``: ``api`` is the app's
    ``POST /api/ask``; ``gradio`` is Gradio's two-step ``/gradio_api/call/ask`` (a POST, then the
    result from an event stream), as ``gradio_client`` calls it."""
    t0 = time.perf_counter()
    try:
        client = http_client()
        if route == "api":
            response = client.post(f"{url}/api/ask", json={"question": question, "k": 5}, timeout=timeout)
            if response.status_code == 200:
                return True, time.perf_counter() - t0, response.json()["text"]
            return False, time.perf_counter() - t0, response.text
        event = client.post(f"{url}/gradio_api/call/ask", json={"data": [question, [], 5, "", "", []]}, timeout=timeout).json()["event_id"]
        with client.stream("GET", f"{url}/gradio_api/call/ask/{event}", timeout=timeout) as stream:
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind in ("complete", "error"):
                    data = line[5:].strip()
                    if kind == "complete":
                        return True, time.perf_counter() - t0, json.loads(data)[0]["text"]
                    return False, time.perf_counter() - t0, data
    except Exception as exc:  # noqa: BLE001 - a failed call is a result here
        return False, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
    return False, time.perf_counter() - t0, "no result"


def update_fn_index(url: str) -> int:
    import httpx

    config = httpx.get(f"{url}/config", timeout=30).json()
    upload = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "qa-upload")
    return next(i for i, d in enumerate(config["dependencies"]) if upload in d["inputs"] and len(d["inputs"]) == 3)


def upload_and_update(url: str, path: Path) -> str:
    """Upload ``path`` and run the Documents tab's update with the admin token (as the browser does)."""
    import httpx

    with open(path, "rb") as fh:
        uploaded = httpx.post(f"{url}/gradio_api/upload", files={"files": (path.name, fh)}, timeout=120).json()[0]
    session = f"bench{time.monotonic_ns()}"
    data = [[{"path": uploaded, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}], TOKEN, False]
    httpx.post(f"{url}/gradio_api/queue/join", json={"data": data, "fn_index": update_fn_index(url),
                                                      "session_hash": session, "event_data": None}, timeout=60)
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}, timeout=3600) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message["output"]["data"][0]
    return "no result"


def seed_copy(work: Path, name: str) -> Path:
    docs = work / name
    shutil.copytree(SEED, docs)
    return docs


# ---- parts --------------------------------------------------------------------------------
def kill_trials(work: Path, trials: int, articles: int) -> dict:
    import qa
    from qa.store import sync

    base_docs = seed_copy(work, "kill_docs")
    base_index = work / "kill_base_index"
    sync(base_docs, base_index)
    new = bbc_records(articles)
    full_docs = work / "kill_docs_full"
    shutil.copytree(base_docs, full_docs)
    write_articles(full_docs, new)
    old_n, new_n = 5, 5 + len(new)

    def run_update(index: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "qa", "index", "--documents", str(full_docs), "--index", str(index)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # One update run to the end: how long a whole update takes, so kills fall all over it.
    probe = work / "kill_probe"
    shutil.copytree(base_index, probe)
    t0 = time.perf_counter()
    run_update(probe).wait()
    full_s = time.perf_counter() - t0
    rng = random.Random(12)
    results = []
    for trial in range(trials):
        index = work / f"kill_{trial}"
        shutil.copytree(base_index, index)
        proc = run_update(index)
        delay = rng.uniform(0.2, full_s)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        try:
            n = len(qa.Index.load(index))
            state = "old" if n == old_n else "new" if n == new_n else f"MIXED ({n} documents)"
        except Exception as exc:  # noqa: BLE001
            state = f"ERROR {type(exc).__name__}: {exc}"
        leftovers = len(list(index.glob("gen-*")))
        summary = sync(full_docs, index)  # the next update finishes the job and cleans up
        after = {"generations": len(list(index.glob("gen-*"))), "tmp_manifest": (index / ".manifest.json.tmp").exists(),
                 "documents": summary.total_documents}
        results.append({"trial": trial, "kill_after_s": round(delay, 2), "killed": killed, "state": state,
                        "generations_after_kill": leftovers, "after_next_update": after})
        print(f"kill trial {trial}: {results[-1]}", flush=True)
        shutil.rmtree(index)
    bad = [r for r in results if r["state"] not in ("old", "new") or r["after_next_update"]["generations"] > 2
           or r["after_next_update"]["tmp_manifest"] or r["after_next_update"]["documents"] != new_n]
    return {"trials": len(results), "killed": sum(r["killed"] for r in results),
            "state_old": sum(r["state"] == "old" for r in results), "state_new": sum(r["state"] == "new" for r in results),
            "bad": len(bad), "update_s": round(full_s, 1), "added_articles": len(new), "detail": results}


def concurrent_clients(app: App, levels: list[int], per_client: int) -> list[dict]:
    out = []
    for clients in levels:
        calls = [QUESTIONS[(c * per_client + i) % len(QUESTIONS)] for c in range(clients) for i in range(per_client)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(lambda c: [app.ask(q) for q in calls[c * per_client:(c + 1) * per_client]],
                                    range(clients)))
        wall = time.perf_counter() - t0
        flat = [r for client in results for r in client]
        ok = [s for good, s, _ in flat if good]
        row = {"clients": clients, "calls": len(flat), "ok": len(ok), **percentiles(ok),
               "answers_per_s": round(len(ok) / wall, 2), "wall_s": round(wall, 1)}
        out.append(row)
        print(f"clients: {row}", flush=True)
    return out


def answers_during_update(app: App, work: Path, articles: int) -> dict:
    records = bbc_records(articles, offset=1000)
    upload = work / "bbc_upload.jsonl"
    upload.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    for q in QUESTIONS[:3]:
        app.ask(q)  # warm
    idle = [app.ask(q)[1] for q in QUESTIONS]
    done = threading.Event()
    latencies: list[float] = []
    failures: list[str] = []

    def asker():
        i = 0
        while not done.is_set():
            good, seconds, text = app.ask(QUESTIONS[i % len(QUESTIONS)])
            (latencies.append(seconds) if good else failures.append(text))
            i += 1

    thread = threading.Thread(target=asker)
    t0 = time.perf_counter()
    thread.start()
    summary = upload_and_update(app.url, upload)
    update_s = time.perf_counter() - t0
    done.set()
    thread.join()
    found = re.search(r"(\d+) chunks embedded", summary)
    embedded = int(found.group(1)) if found else None
    return {"upload_articles": len(records), "update_s": round(update_s, 1), "summary": summary[:400],
            "during": {**percentiles(latencies), "n": len(latencies), "failures": len(failures)},
            "idle": percentiles(idle), "chunks_embedded": embedded}


def bad_file_corpus(work: Path) -> dict:
    from qa.store import sync

    import qa

    docs = seed_copy(work, "bad_docs")
    sync(docs, work / "bad_index")  # the seed articles indexed first: a bad file must not cost them
    outside = work / "outside"
    outside.mkdir()
    (outside / "passwd.txt").write_text("root:x:0:0:root:/root:/bin/bash\n")
    bad = {
        "binary.txt": b"\x00\x01\x02" * 500,
        "latin1.txt": "caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"),
        "empty.txt": b"",
        "spaces.md": b"   \n\n  \t ",
        "controls.txt": bytes(range(1, 32)) * 50,
        "bad.jsonl": b"{not json}\n[1,2]\n{\"id\": \"\", \"text\": \"x\"}\n",
        "no_text.jsonl": b"{\"id\": \"a1\"}\n",
        "dup.jsonl": json.dumps({"id": "004_c8ebc32f0d2447af", "text": "The Enbek Program will create 3 jobs."}).encode() + b"\n",
        "furniture.html": b"<html><body><nav>Home</nav></body></html>",
        "script.htm": b"<script>alert(1)</script>",
        "huge_word.txt": b"Intro sentence here. " + b"x" * 100_000,
        "utf16.txt": "An article in UTF-16.".encode("utf-16"),
        "zero_width.txt": "\u200b\u200c\u200d\ufeff".encode() * 100,
        "nul_in_middle.md": b"# Title\n\nSome text" + b"\x00" * 10 + b" more text.",
    }
    for name, data in bad.items():
        (docs / name).write_bytes(data)
    os.symlink(outside / "passwd.txt", docs / "passwd.txt")
    os.symlink(outside, docs / "linked_dir")
    (docs / "folder.txt").mkdir()  # a folder with an article's name
    tried = len(bad) + 3
    summary = sync(docs, work / "bad_index")
    skipped_names = sorted({Path(p).name for p, _ in summary.skipped})
    indexed = {d.doc_id for d in qa.Index.load(work / "bad_index").documents()}
    seed_ids = {p.stem for p in SEED.glob("*.txt")}
    return {"files_tried": tried, "skipped": len(skipped_names), "indexed": sorted(indexed - seed_ids),
            "seed_articles_kept": len(seed_ids & indexed), "removed": summary.removed, "skipped_files": skipped_names,
            "reasons": [f"{Path(p).name}: {r}" for p, r in summary.skipped]}


def peak_memory(app: App, questions: int, served_before: int) -> dict:
    remaining = max(0, questions - served_before)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: app.ask(QUESTIONS[i % len(QUESTIONS)]), range(remaining)))
    return {"questions": questions, **{f"{k}_mib": v for k, v in app.memory().items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="kill,clients,update,badfiles,memory")
    parser.add_argument("--trials", type=int, default=27)
    parser.add_argument("--kill-articles", type=int, default=40)
    parser.add_argument("--clients", default="1,4,16,32")
    parser.add_argument("--questions-per-client", type=int, default=8)
    parser.add_argument("--update-articles", type=int, default=170, help="BBC articles in the upload (170: about 650 chunks)")
    parser.add_argument("--memory-questions", type=int, default=400)
    parser.add_argument("--ask-concurrency", type=int, default=None, help="passed to app.py (default: the app's)")
    parser.add_argument("--route", choices=("api", "gradio"), default="api",
                        help="how clients ask: POST /api/ask (default) or Gradio's /gradio_api/call/ask")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="qa-bench-faults-"))
    result: dict = {"contention_note": os.environ.get("QA_BENCH_NOTE", ""), "args": vars(args)}
    try:
        if "badfiles" in parts:
            result["badfiles"] = bad_file_corpus(work)
            print(f"badfiles: {result['badfiles']['files_tried']} tried, {result['badfiles']['skipped']} skipped", flush=True)
        if "kill" in parts:
            result["kill"] = kill_trials(work, args.trials, args.kill_articles)
        if parts & {"clients", "update", "memory"}:
            from qa.store import sync

            docs = seed_copy(work, "app_docs")
            sync(docs, work / "app_index")
            app = App(docs, work / "app_index", work / "app.log", args.ask_concurrency, args.route)
            try:
                served = 0
                if "clients" in parts:
                    result["clients"] = concurrent_clients(app, [int(c) for c in args.clients.split(",")],
                                                           args.questions_per_client)
                    served += sum(r["calls"] for r in result["clients"])
                if "memory" in parts:
                    result["memory"] = peak_memory(app, args.memory_questions, served)
                    print(f"memory: {result['memory']}", flush=True)
                if "update" in parts:
                    result["update"] = answers_during_update(app, work, args.update_articles)
                    print(f"update: {result['update']}", flush=True)
            finally:
                app.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    save("faults", result)


if __name__ == "__main__":
    main()
