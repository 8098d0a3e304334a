"""The answering pipeline's components are passed in: a test swaps the reader without patching
anything (a real index and retriever; a recording reader in place of the model)."""
from __future__ import annotations

import re
from dataclasses import replace

import qa
from qa import models
from qa.answering import Answerer
from qa.reader import ReaderResult
from qa.settings import AnswerSettings
from qa.types import Span


class RecordingReader:
    """Reads like a reader that always picks the first figure of a window, and records each call."""

    def __init__(self):
        self.calls = []

    def read(self, question, contexts, top_k=3, proposals=None):
        self.calls.append((question, list(contexts), proposals))
        results = []
        for context in contexts:
            m = re.search(r"\d[\d.,]*", context)
            spans = [Span(m.group(0), m.start(), m.end(), 0.9)] if m else []
            results.append(ReaderResult(spans, 0.1, [5.0] * len(spans), [None] * len(proposals[len(results)] if proposals else []),
                                        [None] * len(proposals[len(results)] if proposals else [])))
        return results


def test_ask_reads_once_per_question_through_the_reader_it_was_given(seed_index):
    reader = RecordingReader()
    settings = replace(AnswerSettings(), max_windows=2, use_parser=False)
    answerer = Answerer(seed_index.retriever, reader, None, models.answer_scorer(), settings)
    index = qa.Index(seed_index.store, settings, answerer=answerer)
    answer = index.ask("How many jobs will the Enbek Program create?")
    assert len(reader.calls) == 1  # one forward pass for all windows
    question, contexts, proposals = reader.calls[0]
    assert question == "How many jobs will the Enbek Program create?"
    assert 1 <= len(contexts) <= 2 and all(proposals_of == [] for proposals_of in proposals)
    # Whatever the reader says, the answer quotes the article where its citation says.
    for c in answer.citations:
        assert c.text[c.answer_start - c.start:c.answer_end - c.start] == answer.text


def test_an_index_builds_its_answerer_from_its_settings(seed_index_dir):
    index = qa.Index.load(seed_index_dir, settings=AnswerSettings(max_windows=1))
    assert index.answerer.settings.max_windows == 1
    assert index.answerer.reader is models.reader()  # the shipped model, shared in the process
