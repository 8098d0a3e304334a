"""Evaluation: official SQuAD v1.1/v2.0 metrics, retrieval and calibration helpers, reports.

EM/F1 follow the official ``evaluate-v1.1.py`` exactly (normalisation: lowercase,
remove punctuation, remove the articles a/an/the, collapse whitespace; max over
gold answers; percentages).
"""
from __future__ import annotations

import gzip
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .text import normalize_answer

# --------------------------------------------------------------------------- official SQuAD metric


def f1_score(prediction: str, ground_truth: str) -> float:
    """Official SQuAD v1.1 token F1 (0..1)."""
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def squad_evaluate(dataset: list[dict], predictions: dict[str, str]) -> dict[str, float]:
    """The official v1.1 ``evaluate`` over the SQuAD ``data`` list (unanswered ids count as 0)."""
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                ground_truths = list(map(lambda x: x["text"], qa["answers"]))
                prediction = predictions[qa["id"]]
                exact_match += metric_max_over_ground_truths(exact_match_score, prediction, ground_truths)
                f1 += metric_max_over_ground_truths(f1_score, prediction, ground_truths)
    exact_match = 100.0 * exact_match / max(total, 1)
    f1 = 100.0 * f1 / max(total, 1)
    return {"exact_match": exact_match, "f1": f1}


# SQuAD v2.0: an empty prediction against no gold answer is correct.
def _v2_gold(answers: Sequence[str]) -> list[str]:
    gold = [a for a in answers if normalize_answer(a)]
    return gold or [""]


def exact_v2(prediction: str, answers: Sequence[str]) -> float:
    return max(float(normalize_answer(prediction) == normalize_answer(g)) for g in _v2_gold(answers))


def f1_v2(prediction: str, answers: Sequence[str]) -> float:
    def one(pred: str, gold: str) -> float:
        p, g = normalize_answer(pred), normalize_answer(gold)
        if not p or not g:  # v2: no answer vs no answer
            return float(p == g)
        return float(f1_score(pred, gold))

    return max(one(prediction, g) for g in _v2_gold(answers))


def squad_v2_evaluate(dataset: list[dict], predictions: dict[str, str]) -> dict[str, float]:
    """Official v2.0 EM/F1 (no threshold tuning), with HasAns/NoAns breakdown."""
    em = f1 = 0.0
    has = [0, 0.0, 0.0]
    no = [0, 0.0]
    total = 0
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                total += 1
                golds = [a["text"] for a in qa.get("answers", [])]
                pred = predictions.get(qa["id"], "")
                e, f = exact_v2(pred, golds), f1_v2(pred, golds)
                em += e
                f1 += f
                if any(normalize_answer(g) for g in golds):
                    has[0] += 1
                    has[1] += e
                    has[2] += f
                else:
                    no[0] += 1
                    no[1] += e
    n = max(total, 1)
    out = {"exact_match": 100 * em / n, "f1": 100 * f1 / n, "total": total}
    if has[0]:
        out.update(HasAns_exact=100 * has[1] / has[0], HasAns_f1=100 * has[2] / has[0], HasAns_total=has[0])
    if no[0]:
        out.update(NoAns_exact=100 * no[1] / no[0], NoAns_total=no[0])
    return out


# --------------------------------------------------------------------------- data loading


def _open(path: str | Path):
    path = str(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def load_squad(path: str | Path) -> list[dict]:
    """The ``data`` list of a SQuAD JSON file (optionally gzipped)."""
    with _open(path) as f:
        return json.load(f)["data"]


def select_articles(data: list[dict], articles: str | None) -> list[dict]:
    """``articles`` as a Python slice "a:b" (e.g. "24:48"), a single index, or None for all."""
    if not articles:
        return data
    if ":" in articles:
        a, b = articles.split(":", 1)
        return data[slice(int(a) if a else None, int(b) if b else None)]
    return [data[int(articles)]]


def score_predictions(dataset_path: str | Path, predictions: dict[str, str] | str | Path) -> dict[str, float]:
    """Official SQuAD v1.1 score of a predictions dict (or JSON file) against a dataset file."""
    if not isinstance(predictions, dict):
        with _open(predictions) as f:
            predictions = json.load(f)
    res = squad_evaluate(load_squad(dataset_path), predictions)
    return {"exact_match": res["exact_match"], "f1": res["f1"]}


# --------------------------------------------------------------------------- helpers


def contains_gold(prediction_context: str, answers: Sequence[str], max_tokens: int = 30) -> bool:
    """True if some normalised gold answer occurs inside the (first ``max_tokens`` tokens of the) text."""
    toks = normalize_answer(prediction_context).split()[:max_tokens]
    text = " " + " ".join(toks) + " "
    for a in answers:
        g = normalize_answer(a)
        if g and (" " + g + " ") in text:
            return True
    return False


def answer_contains_gold(answer: str, answers: Sequence[str], max_tokens: int = 30) -> bool:
    """The answer (at most ``max_tokens`` normalised tokens long) contains a gold answer."""
    toks = normalize_answer(answer).split()
    if not toks or len(toks) > max_tokens:
        return False
    return contains_gold(answer, answers, max_tokens)


def recall_at_k(ranked: Sequence[Any], relevant: Iterable[Any], k: int) -> float:
    """Fraction of relevant items found in the top k (1.0/0.0 for a single relevant item)."""
    rel = set(relevant)
    if not rel:
        return 0.0
    return len(rel & set(list(ranked)[:k])) / len(rel)


def ndcg_at_k(ranked: Sequence[Any], relevant: Iterable[Any], k: int) -> float:
    """Binary-relevance nDCG@k (duplicates in ``ranked`` count once)."""
    rel = set(relevant)
    if not rel:
        return 0.0
    seen: set = set()
    dcg = 0.0
    for i, item in enumerate(list(ranked)[:k]):
        if item in rel and item not in seen:
            dcg += 1.0 / math.log2(i + 2)
        seen.add(item)
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), k)))
    return dcg / idcg


def calibration_table(confidences: Sequence[float], correct: Sequence[bool | float], bins: int = 10) -> dict:
    """Reliability table: equal-width confidence bins with count, mean confidence, accuracy; plus ECE."""
    rows = []
    n = len(confidences)
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, c in enumerate(confidences) if (lo <= c < hi) or (b == bins - 1 and c == hi)]
        if not idx:
            rows.append({"bin": f"{lo:.1f}-{hi:.1f}", "count": 0, "confidence": None, "accuracy": None})
            continue
        conf = sum(confidences[i] for i in idx) / len(idx)
        acc = sum(float(correct[i]) for i in idx) / len(idx)
        ece += len(idx) / max(n, 1) * abs(conf - acc)
        rows.append({"bin": f"{lo:.1f}-{hi:.1f}", "count": len(idx), "confidence": conf, "accuracy": acc})
    return {"bins": rows, "ece": ece, "n": n}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    v = sorted(values)
    if not v:
        return float("nan")
    pos = (len(v) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/mean latency in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "mean_ms": sum(ms) / len(ms) if ms else float("nan"),
        "n": len(ms),
    }


# --------------------------------------------------------------------------- reader on SQuAD


def _words_window(text: str, n_words: int) -> str:
    return " ".join(text.split()[:n_words])


def reader_latency(reader, questions: Sequence[str], contexts: Sequence[str], n: int = 30, windows: int = 4, words: int = 60) -> dict:
    """Latency of ``reader.read(question, [4 windows of ~80 word pieces])`` (ms p50/p95)."""
    times = []
    nc = len(contexts)
    if not questions or not nc:
        return latency_stats([])
    reader.read(questions[0], [_words_window(contexts[0], words)])  # warm-up
    for i in range(n):
        q = questions[i % len(questions)]
        ctxs = [_words_window(contexts[(i + j * 7) % nc], words) for j in range(windows)]
        t = time.perf_counter()
        reader.read(q, ctxs)
        times.append(time.perf_counter() - t)
    return latency_stats(times)


def evaluate_squad(path: str | Path, articles: str | None = "24:48", reader=None, batch: int = 64, latency_runs: int = 30) -> dict:
    """Run the reader alone over every (question, gold paragraph) of the selected articles.

    Returns official EM/F1 (v1.1; or v2.0 with abstention when the file has unanswerable
    questions: the reader abstains when ``no_answer >= 0.5``), a reliability table of the
    top span's score against exact match, throughput and ``read()`` latency for 4 windows.
    """
    from . import models

    reader = reader or models.reader()
    data = select_articles(load_squad(path), articles)
    items = [
        (qa, p["context"]) for a in data for p in a["paragraphs"] for qa in p["qas"]
    ]
    is_v2 = any(qa.get("is_impossible") for qa, _ in items)
    preds: dict[str, str] = {}
    top_preds: dict[str, str] = {}
    conf, correct, na_probs, na_gold = [], [], [], []
    t0 = time.perf_counter()
    for b in range(0, len(items), batch):
        chunk = items[b : b + batch]
        results = reader.read_pairs([qa["question"] for qa, _ in chunk], [c for _, c in chunk], top_k=1)
        for (qa, _), res in zip(chunk, results):
            golds = [x["text"] for x in qa.get("answers", [])]
            top = res.spans[0] if res.spans else None
            text = top.text if top else ""
            top_preds[qa["id"]] = text
            preds[qa["id"]] = ("" if res.no_answer >= 0.5 else text) if is_v2 else text
            na_probs.append(res.no_answer)
            na_gold.append(not golds)
            if top is not None:
                conf.append(top.score)
                correct.append(bool(golds) and bool(metric_max_over_ground_truths(exact_match_score, text, golds)))
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {
        "type": "squad",
        "path": str(path),
        "articles": articles or "all",
        "n_articles": len(data),
        "n_questions": len(items),
        "reader_seconds": seconds,
        "questions_per_second": len(items) / seconds if seconds else float("nan"),
    }
    if is_v2:
        out["v2"] = squad_v2_evaluate(data, preds)
        out["top_span_on_answerable"] = squad_evaluate(
            [{"paragraphs": [{"qas": [q for q in p["qas"] if not q.get("is_impossible")]} for p in a["paragraphs"]]} for a in data],
            top_preds,
        )
        out["no_answer_calibration"] = calibration_table(na_probs, na_gold)
        out.update(exact_match=out["v2"]["exact_match"], f1=out["v2"]["f1"])
    else:
        out.update(squad_evaluate(data, preds))
    out["calibration"] = calibration_table(conf, correct)
    qs = [qa["question"] for qa, _ in items]
    ctxs = [p["context"] for a in data for p in a["paragraphs"]]
    if latency_runs:
        out["read_latency_4_windows"] = reader_latency(reader, qs, ctxs, n=latency_runs)
    return out


# --------------------------------------------------------------------------- project JSONL questions


def load_jsonl(path: str | Path) -> list[dict]:
    with _open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def evaluate_questions(path: str | Path, ask: Callable | None = None, k: int = 5) -> dict:
    """Evaluate ``ask(question, history=..., k=...)`` (default ``qa.ask``) on a project JSONL file.

    Each line: ``id, question, answers ([] = unanswerable), doc (gold doc id or null), kind, history``.
    """
    import qa

    if ask is None:
        ask = qa.ask
    rows = load_jsonl(path)
    per: list[dict] = []
    times: list[float] = []
    if rows:
        # Warm-up, left out of the latency: every model loaded, whichever the first question needs.
        qa.load_models()
        ask(rows[0]["question"])
    for r in rows:
        history = [tuple(h) for h in (r.get("history") or [])]
        t = time.perf_counter()
        try:
            ans = ask(r["question"], history=history, k=k)
        except TypeError:
            ans = ask(r["question"], history=history)
        times.append(time.perf_counter() - t)
        golds = list(r.get("answers") or [])
        text = ans.text or ""
        cited = [c.doc_id for c in (ans.citations or [])]
        passage_docs = [p.doc_id for p in (ans.passages or [])]
        doc = r.get("doc")
        item = {
            "id": r.get("id"),
            "kind": r.get("kind"),
            "answerable": bool(golds),
            "prediction": text,
            "score": float(ans.score) if ans.score is not None else 0.0,
            "em_v2": exact_v2(text, golds),
            "f1_v2": f1_v2(text, golds),
        }
        if golds:
            item["em"] = float(metric_max_over_ground_truths(exact_match_score, text, golds)) if text else 0.0
            item["f1"] = float(metric_max_over_ground_truths(f1_score, text, golds)) if text else 0.0
            item["contains_gold"] = answer_contains_gold(text, golds)
            item["answered"] = bool(text)
        else:
            item["abstained"] = not text
        if doc:
            item["top_citation_doc"] = bool(cited) and cited[0] == doc
            item["gold_doc_recall"] = recall_at_k(passage_docs, [doc], k)
            item["gold_doc_ndcg"] = ndcg_at_k(passage_docs, [doc], k)
        per.append(item)

    def mean(key, subset):
        vals = [float(x[key]) for x in subset if key in x]
        return 100.0 * sum(vals) / len(vals) if vals else None

    ans_items = [x for x in per if x["answerable"]]
    unans = [x for x in per if not x["answerable"]]
    answered = [x for x in per if x["prediction"]]
    out: dict[str, Any] = {
        "type": "questions",
        "path": str(path),
        "k": k,
        "n_questions": len(per),
        "n_answerable": len(ans_items),
        "n_unanswerable": len(unans),
        "exact_match": mean("em", ans_items),
        "f1": mean("f1", ans_items),
        "contains_gold": mean("contains_gold", ans_items),
        "answered_rate": mean("answered", ans_items),
        "abstention_on_unanswerable": mean("abstained", unans),
        "v2_exact_match": mean("em_v2", per),
        "v2_f1": mean("f1_v2", per),
        "top_citation_doc_accuracy": mean("top_citation_doc", per),
        f"gold_doc_recall@{k}": mean("gold_doc_recall", per),
        f"gold_doc_ndcg@{k}": mean("gold_doc_ndcg", per),
        "calibration": calibration_table([x["score"] for x in answered], [x["em_v2"] for x in answered]),
        "latency": latency_stats(times),
        "by_kind": {},
        "items": per,
    }
    for kind in sorted({str(x["kind"]) for x in per}):
        sub = [x for x in per if str(x["kind"]) == kind]
        out["by_kind"][kind] = {"n": len(sub), "v2_exact_match": mean("em_v2", sub), "v2_f1": mean("f1_v2", sub)}
    return out


# --------------------------------------------------------------------------- entry points


def _is_squad(path: str | Path) -> bool:
    p = str(path)
    if p.endswith((".jsonl", ".jsonl.gz")):
        return False
    with _open(path) as f:
        head = f.read(4096).lstrip()
    if not head.startswith("{"):
        return False
    try:
        first = json.loads(head.splitlines()[0])
        return isinstance(first, dict) and "data" in first
    except ValueError:
        # a multi-line JSON document (not one record per line) -> SQuAD
        return '"data"' in head or '"version"' in head


def run_eval(path: str, articles: str | None = None, k: int = 5) -> dict:
    """Evaluate a SQuAD JSON file (reader alone) or a project JSONL file (``qa.ask``).

    For SQuAD, ``articles`` is a slice like "24:48"; when None, SQuAD v1.1 dev (whose first
    article is Super_Bowl_50) defaults to "24:48", the held-out report set (articles 0-23
    were used to fit the reader), and any other SQuAD file to all articles.
    """
    if _is_squad(path):
        if articles is None:
            data = load_squad(path)
            articles = "24:48" if data and data[0].get("title") == "Super_Bowl_50" and len(data) == 48 else None
        return evaluate_squad(path, articles=articles)
    return evaluate_questions(path, k=k)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def format_calibration(table: dict) -> str:
    lines = ["  bin        count  confidence  accuracy"]
    for r in table["bins"]:
        if not r["count"]:
            continue
        lines.append(f"  {r['bin']:<9} {r['count']:>6}  {r['confidence']:>10.3f}  {r['accuracy']:>8.3f}")
    lines.append(f"  ECE {table['ece']:.3f} over {table['n']} answers")
    return "\n".join(lines)


def format_report(res: dict) -> str:
    """Human-readable text for a ``run_eval`` result."""
    lines = []
    if res.get("type") == "squad":
        lines.append(f"SQuAD reader evaluation: {res['path']} (articles {res['articles']}, {res['n_articles']} articles, {res['n_questions']} questions)")
        lines.append(f"  exact match {_fmt(res['exact_match'])}   F1 {_fmt(res['f1'])}")
        if "v2" in res:
            v2 = res["v2"]
            lines.append("  v2: " + ", ".join(f"{k} {_fmt(v)}" for k, v in v2.items()))
            t = res["top_span_on_answerable"]
            lines.append(f"  top span on answerable questions: EM {_fmt(t['exact_match'])} F1 {_fmt(t['f1'])}")
        lines.append(f"  reader throughput {res['questions_per_second']:.1f} questions/s")
        if "read_latency_4_windows" in res:
            lat = res["read_latency_4_windows"]
            lines.append(f"  read() latency, 4 windows of ~80 word pieces: p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms")
        lines.append("Reliability of the top span's score (accuracy = exact match):")
        lines.append(format_calibration(res["calibration"]))
        if "no_answer_calibration" in res:
            lines.append("Reliability of P(no answer):")
            lines.append(format_calibration(res["no_answer_calibration"]))
        return "\n".join(lines)
    k = res.get("k", 5)
    lines.append(f"Question-set evaluation: {res['path']} ({res['n_questions']} questions: {res['n_answerable']} answerable, {res['n_unanswerable']} unanswerable)")
    lines.append(f"  answerable: EM {_fmt(res['exact_match'])}  F1 {_fmt(res['f1'])}  contains-gold {_fmt(res['contains_gold'])}  answered {_fmt(res['answered_rate'])}%")
    lines.append(f"  abstention on unanswerable: {_fmt(res['abstention_on_unanswerable'])}%")
    lines.append(f"  all (v2 scoring): EM {_fmt(res['v2_exact_match'])}  F1 {_fmt(res['v2_f1'])}")
    lines.append(f"  top-citation doc accuracy {_fmt(res['top_citation_doc_accuracy'])}   gold-doc recall@{k} {_fmt(res.get(f'gold_doc_recall@{k}'))}   nDCG@{k} {_fmt(res.get(f'gold_doc_ndcg@{k}'))}")
    lat = res["latency"]
    lines.append(f"  latency: p50 {_fmt(lat['p50_ms'])} ms  p95 {_fmt(lat['p95_ms'])} ms")
    if res.get("by_kind"):
        lines.append("  by kind: " + "; ".join(f"{kd} (n={v['n']}) EM {_fmt(v['v2_exact_match'])} F1 {_fmt(v['v2_f1'])}" for kd, v in res["by_kind"].items()))
    lines.append("Reliability of answer scores (accuracy = exact match, answered questions only):")
    lines.append(format_calibration(res["calibration"]))
    return "\n".join(lines)
