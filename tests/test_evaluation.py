"""Evaluation module: official SQuAD scoring and the helper metrics."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa import evaluation as ev

DATA = Path(__file__).parent / "data"
DEV = DATA / "squad-v1.1-dev.json.gz"
BERT = DATA / "bert_large_ensemble_predictions.json.gz"


def test_official_predictions_score():
    res = ev.score_predictions(DEV, BERT)
    assert round(res["exact_match"], 2) == 86.21
    assert round(res["f1"], 2) == 92.20


def test_normalisation_and_metrics():
    assert ev.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert ev.normalize_answer("an apple and a pear") == "apple and pear"
    assert ev.exact_match_score("the Denver Broncos", "Denver Broncos")
    assert ev.f1_score("Denver Broncos team", "Denver Broncos") == pytest.approx(0.8)
    assert ev.f1_score("nothing", "Denver") == 0
    assert ev.metric_max_over_ground_truths(ev.f1_score, "Broncos", ["Panthers", "Broncos"]) == 1.0


def test_v2_scoring():
    assert ev.exact_v2("", []) == 1.0
    assert ev.exact_v2("something", []) == 0.0
    assert ev.exact_v2("", ["gold"]) == 0.0
    assert ev.f1_v2("gold answer", ["gold"]) == pytest.approx(2 / 3)
    data = [{"paragraphs": [{"qas": [
        {"id": "a", "answers": [{"text": "x"}]},
        {"id": "b", "answers": [], "is_impossible": True},
    ]}]}]
    res = ev.squad_v2_evaluate(data, {"a": "x", "b": ""})
    assert res["exact_match"] == 100.0 and res["NoAns_exact"] == 100.0


def test_contains_recall_ndcg_calibration_latency():
    assert ev.answer_contains_gold("more than 750 thousand jobs", ["750 thousand"])
    assert not ev.answer_contains_gold("750", ["750 thousand"])
    assert not ev.answer_contains_gold("", ["x"])
    assert ev.recall_at_k(["d2", "d1", "d3"], ["d1"], 1) == 0.0
    assert ev.recall_at_k(["d2", "d1", "d3"], ["d1"], 2) == 1.0
    assert ev.ndcg_at_k(["d1"], ["d1"], 5) == pytest.approx(1.0)
    assert ev.ndcg_at_k(["d2", "d1"], ["d1"], 5) == pytest.approx(1 / 1.5849625, rel=1e-6)
    table = ev.calibration_table([0.05, 0.95, 0.9, 0.15], [False, True, True, True], bins=10)
    assert table["n"] == 4 and sum(r["count"] for r in table["bins"]) == 4
    assert table["ece"] == pytest.approx((0.05 + 0.05 + 0.1 + 0.85) / 4)
    lat = ev.latency_stats([0.01, 0.02, 0.03])
    assert lat["p50_ms"] == pytest.approx(20.0)
    assert ev.select_articles(list(range(48)), "24:48") == list(range(24, 48))


def test_run_eval_on_small_squad_file(tmp_path):
    ctx = "The Enbek Program will create more than 750 thousand jobs. It was launched in Astana in 2017."
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": ctx, "qas": [
        {"id": "q1", "question": "How many jobs will the Enbek Program create?",
         "answers": [{"text": "750 thousand", "answer_start": ctx.index("750")},
                     {"text": "more than 750 thousand", "answer_start": ctx.index("more")}]},
    ]}]}]}
    path = tmp_path / "small.json"
    path.write_text(json.dumps(data))
    res = ev.run_eval(str(path))
    assert res["type"] == "squad" and res["n_questions"] == 1
    assert res["f1"] > 50
    text = ev.format_report(res)
    assert "exact match" in text and "ECE" in text


def test_evaluate_questions_with_fake_ask(tmp_path):
    from qa.types import Answer, Citation, Passage

    rows = [
        {"id": "1", "question": "q1", "answers": ["16"], "doc": "d1", "kind": "number", "history": []},
        {"id": "2", "question": "q2", "answers": [], "doc": None, "kind": "unanswerable", "history": [["q1", "16"]]},
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    def ask(question, history=(), k=5):
        if question == "q1":
            p = Passage("16 regional", "d1", None, None, 0, 11, 1.0, "d1#0")
            c = Citation("d1", None, None, "16 regional", 0, 11, 0, 2)
            return Answer(question, "16", 0.9, [c], [], [p])
        assert history == [("q1", "16")]
        return Answer(question, "", 0.1)

    res = ev.evaluate_questions(path, ask=ask, k=5)
    assert res["exact_match"] == 100.0 and res["abstention_on_unanswerable"] == 100.0
    assert res["top_citation_doc_accuracy"] == 100.0 and res["gold_doc_recall@5"] == 100.0
    assert "latency" in ev.format_report(res)
