"""The shipped span reader (real model; loaded once per session)."""
from __future__ import annotations

import pytest

from qa import models
from qa.reader import Reader, ReaderResult
from qa.types import Span

ENBEK = "The Enbek Program will create more than 750 thousand jobs."


@pytest.fixture(scope="module")
def reader() -> Reader:
    return models.reader()


def _check_spans(spans, context):
    assert spans, "expected at least one span"
    for s in spans:
        assert isinstance(s, Span)
        assert context[s.start:s.end] == s.text
        assert s.text == s.text.strip() and s.text
        assert 0.0 <= s.score <= 1.0
    scores = [s.score for s in spans]
    assert scores == sorted(scores, reverse=True)


def test_easy_question(reader):
    spans = reader.extract("How many jobs will the Enbek Program create?", ENBEK)
    _check_spans(spans, ENBEK)
    assert "750 thousand" in spans[0].text


@pytest.mark.parametrize(
    "question,context,expected",
    [
        ("Who founded the company?", "  Acme Corp was founded in 1901 by John Smith in Ohio.\n", "John Smith"),
        ("When was Acme founded?", "Acme Corp was founded in 1901 by John Smith in Ohio.", "1901"),
        ("Where is the Eiffel Tower?", "The Eiffel Tower is a wrought-iron tower in Paris, France. It was built in 1889.", "Paris"),
    ],
)
def test_known_answers_and_offsets(reader, question, context, expected):
    spans = reader.extract(question, context, top_k=5)
    _check_spans(spans, context)
    assert expected in spans[0].text


def test_read_batched(reader):
    contexts = [
        "Acme Corp was founded in 1901 by John Smith in Ohio.",
        ENBEK,
        "The weather in Astana was cold and windy on Monday, with snow expected later in the week.",
    ]
    results = reader.read("How many jobs will the Enbek Program create?", contexts, top_k=3)
    assert len(results) == 3 and all(isinstance(r, ReaderResult) for r in results)
    for r, c in zip(results, contexts):
        assert 0.0 <= r.no_answer <= 1.0 and len(r.spans) <= 3
        for s in r.spans:
            assert c[s.start:s.end] == s.text
    assert "750 thousand" in results[1].spans[0].text
    # the answering context is judged more likely to answer than the unrelated ones
    assert results[1].no_answer < results[0].no_answer
    assert results[1].no_answer < results[2].no_answer
    assert results[1].spans[0].score > max((s.score for s in results[2].spans), default=0.0)
    assert reader.read("anything?", []) == []


def test_proposed_spans_are_scored_whatever_their_rank(reader):
    context = "Head of State Kassym-Jomart Tokayev has received today First Deputy Chairman Bauyrzhan Baibek."
    name = context.index("Kassym-Jomart Tokayev")
    proposals = [(name, name + len("Kassym-Jomart Tokayev")), (0, len("Head of State Kassym-Jomart Tokayev"))]
    (result,) = reader.read("Who received Baibek?", [context], top_k=1, proposals=[proposals])
    assert [s.text for s in result.proposed] == ["Kassym-Jomart Tokayev", "Head of State Kassym-Jomart Tokayev"]
    for span, logit in zip(result.proposed, result.proposed_logits):
        assert 0.0 <= span.score <= 1.0 and context[span.start:span.end] == span.text and logit is not None
    # a proposal no window holds whole is None; one list of proposals per context
    (outside,) = reader.read("Who received Baibek?", [context], proposals=[[(0, len(context) + 5)]])
    assert outside.proposed == [None] and outside.proposed_logits == [None]
    with pytest.raises(ValueError, match="one list of spans per context"):
        reader.read("Who received Baibek?", [context, context], proposals=[proposals])


def test_unrelated_question_has_higher_no_answer(reader):
    related = reader.read("How many jobs will the Enbek Program create?", [ENBEK])[0]
    unrelated = reader.read("What is the boiling point of mercury?", [ENBEK])[0]
    assert unrelated.no_answer > related.no_answer


@pytest.mark.parametrize("question,context", [("", ENBEK), ("   ", ENBEK), ("What?", ""), ("What?", " \n ")])
def test_empty_input_raises(reader, question, context):
    with pytest.raises(ValueError):
        reader.extract(question, context)
    with pytest.raises(ValueError):
        reader.read(question, [context])


def test_huge_context_windows(reader):
    filler = "Nothing of interest happened in the small village that year. "
    context = filler * 800 + ENBEK + " " + filler * 800
    context = context[:100_000] if len(context) > 100_000 else context
    assert len(context) >= 90_000
    spans = reader.extract("How many jobs will the Enbek Program create?", context, top_k=3)
    _check_spans(spans, context)
    assert "750 thousand" in spans[0].text


def test_long_context_answer_in_later_window(reader):
    filler = "The committee met on Tuesday to discuss the budget of the regional library. "
    context = filler * 40 + ENBEK
    spans = reader.extract("How many jobs will the Enbek Program create?", context)
    assert "750 thousand" in spans[0].text
    assert spans[0].start > len(filler) * 30


def test_non_english(reader):
    context = "Программа «Енбек» создаст более 750 тысяч рабочих мест в Казахстане."
    spans = reader.extract("Сколько рабочих мест создаст программа?", context)
    for s in spans:
        assert context[s.start:s.end] == s.text
        assert 0.0 <= s.score <= 1.0


# ---- runtimes: onnxruntime (shipped default) and eager torch read the same model

def test_onnx_and_torch_runtimes_give_the_same_logits(reader, tmp_path, monkeypatch):
    import numpy as np

    from qa.onnx_models import native_bf16
    from qa.reader import OnnxSpanModel, TorchBf16SpanModel, TorchSpanModel, encode, pad_batch

    # The shipped default ("auto"): bfloat16 in torch where the CPU multiplies it natively.
    assert isinstance(reader.model, TorchBf16SpanModel if native_bf16() else OnnxSpanModel)
    monkeypatch.setenv("QA_CACHE", str(tmp_path))  # a cold cache: the export itself runs
    # fp32 in both (int8 is quantised differently by torch and by onnxruntime), the plain export
    # and the one onnxruntime fuses (one Attention op per layer, from eager attention).
    torch_reader = Reader.load(quantize=False, runtime="torch")
    assert isinstance(torch_reader.model, TorchSpanModel)
    questions = ["How many jobs will the Enbek Program create?", "Who founded Acme?"]
    contexts = [ENBEK, "Acme Corp was founded in 1901 by John Smith in Ohio. " * 30]  # the second: several windows
    for fused in (False, True):
        reader = Reader.load(quantize=False, runtime="onnx", fused=fused)
        enc, windows = encode(reader.tokenizer, questions, contexts)
        assert len(windows) > 2
        batch = pad_batch(enc, list(range(len(windows))))
        for a, b in zip(reader.model(*batch), torch_reader.model(*batch)):
            np.testing.assert_allclose(a, b, atol=1e-3)
        assert [s.text for s in torch_reader.extract(questions[0], ENBEK)] == [s.text for s in reader.extract(questions[0], ENBEK)]
    import onnx

    ops = {n.op_type for n in onnx.load(str(reader.model.path)).graph.node}
    assert "Attention" in ops  # the fusion happened: it is not the plain graph under another name


def test_onnx_export_is_cached_and_written_whole(tmp_path, monkeypatch):
    from qa import onnx_models

    monkeypatch.setenv("QA_CACHE", str(tmp_path))
    first = Reader.load(quantize=False, runtime="onnx", fused=False)
    exported = sorted((tmp_path / "onnx").iterdir())
    assert [p.suffix for p in exported] == [".onnx"]  # no temporary file left behind
    stamp = exported[0].stat().st_mtime_ns
    second = Reader.load(quantize=False, runtime="onnx", fused=False)  # the cached export is reused, not rewritten
    assert second.model.path == first.model.path == exported[0]
    assert exported[0].stat().st_mtime_ns == stamp
    int8 = Reader.load(quantize=True, fused=False)  # its int8 copy is made from the cached fp32 export
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted([exported[0].name, int8.model.path.name])
    assert exported[0].stat().st_mtime_ns == stamp
    # The key names the weights: other weights, another file.
    assert onnx_models.export_key("reader", "a" * 64) != onnx_models.export_key("reader", "b" * 64)
    assert onnx_models.export_key("reader", "a" * 64) != onnx_models.export_key("reader", "a" * 64, int8=True)


def test_int8_onnx_reader_keeps_the_answer():
    int8 = Reader.load(quantize=True)  # int8 runs in onnxruntime, whatever the CPU
    assert "int8" in int8.model.path.name
    spans = int8.extract("How many jobs will the Enbek Program create?", ENBEK)
    assert "750 thousand" in spans[0].text


def test_bf16_reader_stays_close_to_fp32():
    """bfloat16 (the shipped runtime on CPUs with AMX) against eager fp32: logits within a small
    margin, the same best spans, and padding to the next bucket changes no real position's logit
    beyond bfloat16's own rounding."""
    import numpy as np

    from qa.reader import TorchBf16SpanModel, encode, pad_batch

    bf16 = Reader.load(quantize=False, runtime="torch-bf16")
    fp32 = Reader.load(quantize=False, runtime="torch")
    assert isinstance(bf16.model, TorchBf16SpanModel)
    questions = ["How many jobs will the Enbek Program create?", "Who founded Acme?", "Where is Acme?"]
    contexts = [ENBEK, "Acme Corp was founded in 1901 by John Smith in Ohio. " * 30, "Acme is in Ohio."]
    enc, windows = encode(bf16.tokenizer, questions, contexts)
    every = list(range(len(windows)))
    short = [i for i in every if len(enc["input_ids"][i]) % TorchBf16SpanModel.BUCKET]  # not a bucket's length
    assert short and len(short) < len(every)
    for idx in (every, short):
        batch = pad_batch(enc, idx)
        for a, b in zip(bf16.model(*batch), fp32.model(*batch)):
            real = batch[1].astype(bool)
            assert a.shape == b.shape
            np.testing.assert_allclose(a[real], b[real], atol=0.25)
    assert pad_batch(enc, short)[0].shape[1] % TorchBf16SpanModel.BUCKET != 0  # the padding path ran
    # The TorchScript graph it reads with gives eager bfloat16's logits exactly, for batches of
    # other sizes and lengths than the one it was traced on, with and without padded rows.
    assert bf16.model.graph is not None
    eager = TorchBf16SpanModel(bf16.model.module, trace=False)
    for idx in (every, short, every[:1], every[-2:]):
        batch = pad_batch(enc, idx)
        for a, b in zip(bf16.model(*batch), eager(*batch)):
            np.testing.assert_array_equal(a, b)
    for q, c in zip(questions, contexts):
        assert [s.text for s in bf16.extract(q, c, top_k=2)] == [s.text for s in fp32.extract(q, c, top_k=2)]
    with pytest.raises(ValueError, match="bfloat16"):
        Reader.load(quantize=True, runtime="torch-bf16")


def test_unknown_runtime_is_refused():
    from qa.settings import AnswerSettings

    with pytest.raises(ValueError, match="runtime"):
        Reader.load(runtime="tensorflow")
    with pytest.raises(ValueError, match="reader_runtime"):
        AnswerSettings(reader_runtime="tensorflow")


def test_unwritable_cache_falls_back_to_a_temp_folder(tmp_path, monkeypatch):
    from qa import onnx_models

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("QA_CACHE", str(blocker))
    folder = onnx_models.cache_dir()
    assert folder.is_dir() and not str(folder).startswith(str(blocker))
