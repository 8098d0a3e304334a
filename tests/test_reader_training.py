"""The reader's fitting script (``scripts/reader/train.py``): how it groups a question with its near
misses, batches the groups and scores them under one shared normalisation."""
import importlib.util
import random
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def train():
    spec = importlib.util.spec_from_file_location("reader_train", ROOT / "scripts" / "reader" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ARTICLES = [{"title": "Rivers", "paragraphs": [
    {"context": "The Danube flows through Vienna and Budapest. It is 2,850 kilometres long.",
     "qas": [{"id": "q1", "question": "How long is the Danube?", "answers": [{"text": "2,850 kilometres", "answer_start": 52}]}]},
    {"context": "The Rhine is 1,230 kilometres long and flows through Basel.", "qas": []},
    {"context": "The Elbe rises in the Krkonose mountains and flows to Hamburg.", "qas": []},
    {"context": "Vienna hosts the Danube Island festival, and the Danube is long and wide there.", "qas": []},
]}]


def test_near_misses_are_the_best_matches_that_lack_the_answer(train):
    ex = train.answerable(ARTICLES, "rivers")[0]
    near = train.NearMisses(ARTICLES).of(ex, 2)
    assert ex["context"] not in near and len(near) == 2
    assert near[0].startswith("Vienna hosts the Danube")  # shares "Danube" and "long", no "2,850 kilometres"
    assert all("2,850 kilometres" not in p for p in near)


def test_a_question_is_read_beside_its_near_misses(train):
    from transformers import AutoTokenizer

    from qa import reader as R

    ex = train.answerable(ARTICLES, "rivers")[0]
    assert train.attach_distractors(ARTICLES, [ex], 2) == 1
    negative = {"id": "n", "source": "negative", "question": "Who founded Basel?", "context": ARTICLES[0]["paragraphs"][1]["context"], "answers": []}
    tok = AutoTokenizer.from_pretrained(R.base_model_path(), local_files_only=True)
    feats, units = train.featurize(tok, [ex, negative], 256, 96)
    assert sorted(len(u) for u in units) == [1, 3]
    group = next(u for u in units if len(u) == 3)
    own, *distractors = (feats[i] for i in group)
    assert own[4] and own[2] > 0  # read alone too, with its answer's start
    assert tok.decode(own[0][own[2]:own[3] + 1]) == "2, 850 kilometres"
    assert all(not f[4] and f[2] == f[3] == 0 for f in distractors)


def test_batches_keep_groups_whole_and_cover_every_window(train):
    units = [[i] for i in range(10)] + [[10 + 3 * g, 11 + 3 * g, 12 + 3 * g] for g in range(7)]
    lengths = [random.Random(i).randint(20, 200) for i in range(31)]
    batches = train.epoch_batches(units, lengths, 15, seed=3, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(31))
    assert batches == train.epoch_batches(units, lengths, 15, seed=3, epoch=0)  # resumable
    for b in batches:
        assert len(b) <= 15
        grouped = [i for i in b if i >= 10]
        assert not grouped or len(grouped) == len(b)  # groups are batched with groups
        assert all(i % 3 == 1 and grouped[k + 1] == i + 1 and grouped[k + 2] == i + 2 for k, i in enumerate(grouped) if k % 3 == 0)


def test_shared_norm_loss_is_the_cross_entropy_over_the_group(train):
    torch.manual_seed(0)
    start, end = torch.randn(4, 6), torch.randn(4, 6)
    tt = torch.tensor([[0, 0, 1, 1, 1, 1]] * 4)
    alone = torch.tensor([True, False, False, True])  # a group of three, then a window read alone
    sp, ep = torch.tensor([3, 0, 0, 2]), torch.tensor([4, 0, 0, 2])
    loss = train.shared_norm_loss(start, end, tt, sp, ep, alone, "cpu")
    ctx_s, ctx_e = start[:3, 2:].reshape(-1), end[:3, 2:].reshape(-1)
    expected = (torch.nn.functional.cross_entropy(ctx_s[None], torch.tensor([1]))
                + torch.nn.functional.cross_entropy(ctx_e[None], torch.tensor([2]))) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # windows read alone only: nothing to share
    assert train.shared_norm_loss(start, end, tt, sp, ep, torch.ones(4, dtype=torch.bool), "cpu").item() == 0.0
