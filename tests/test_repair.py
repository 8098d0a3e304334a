"""Glued words spaced for reading (``qa/repair.py``), with offsets that map back exactly."""
from __future__ import annotations

import pytest

from qa import models
from qa.answering import Answerer
from qa.chunking import sentence_spans
from qa.repair import GlueRepairer, Repaired
from qa.types import Passage, Source

AKORDA = ("NUR-SULTAN. KAZINFORM - Head of State Kassym-JomartTokayev has received today First DeputyChairman "
          "of the Nur Otan Party Bauyrzhan Baibek, Kazinform cites the pressservice of Akorda. The party shouldbecome "
          "open and accessible to citizens, tackling thegovernment's issues.")


@pytest.fixture(scope="module")
def repairer() -> GlueRepairer:
    return GlueRepairer.for_tokenizer(models.reader().tokenizer)


def test_glued_words_are_spaced_and_known_words_left_whole(repairer):
    reading = repairer.repair(AKORDA)
    for spaced in ("Jomart Tokayev", "Deputy Chairman", "press service", "should become", "the government"):
        assert spaced in reading.text
    # Known words, their inflections and names with a short capitalised head stay whole.
    for whole in ("received", "tackling", "accessible", "citizens", "KAZINFORM"):
        assert f" {whole}" in reading.text
    assert repairer.repair("McDonald bought an iPhone.").text == "McDonald bought an iPhone."


def test_offsets_map_back_to_the_article(repairer):
    reading = repairer.repair(AKORDA)
    assert reading.inserted
    for offset, ch in enumerate(AKORDA):
        assert reading.text[reading.to_repaired(offset)] == ch
    start = reading.text.index("Deputy Chairman")
    from qa.types import Span

    back = reading.span_to_original(Span("Deputy Chairman", start, start + len("Deputy Chairman"), 0.5))
    assert back.text == "DeputyChairman" == AKORDA[back.start:back.end]
    # A span that ends on an inserted space ends where the word does.
    ends_on_space = reading.span_to_original(Span("Deputy ", start, start + len("Deputy "), 0.5))
    assert ends_on_space.text == "Deputy"
    assert Repaired.as_written("text").to_original(2) == 2


def test_answers_read_through_a_repair_quote_the_article(repairer):
    passage = Passage(text=AKORDA, doc_id="akorda", title=None, date=None, start=0, end=len(AKORDA), score=1.0,
                      chunk_id="akorda#0")
    answerer = Answerer(None, models.reader(), models.parser(), None, repairer=repairer)
    candidates = answerer.read("What should the party become?", [Source(passage, AKORDA, sentence_spans(AKORDA))]).candidates
    assert candidates
    for c in candidates:
        assert AKORDA[c.doc_start:c.doc_end] == c.text
    assert any(c.text.startswith("open and accessible") for c in candidates)
