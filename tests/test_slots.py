"""Question frames and answer slots (``qa/slots.py``), with the real spaCy pipeline."""
from __future__ import annotations

import pytest

from qa import models
from qa.slots import SlotFinder

RECEIVED = ("NUR-SULTAN.KAZINFORM - Head of State Kassym-Jomart Tokayev has received today First DeputyChairman "
            "of the Nur Otan Party Bauyrzhan Baibek, Kazinform cites the pressservice of Akorda.")


@pytest.fixture(scope="module")
def finder() -> SlotFinder:
    return models.parser()


@pytest.mark.parametrize("question,verb,role", [
    ("Who received Baibek?", "receive", "subject"),
    ("What should the party become, according to Tokayev?", "become", "object"),
    ("Which university did Tesla attend?", "attend", "object"),
    ("Who was the university founded by?", None, None),  # the wh-word is a preposition's object
    ("What is the capital of France?", None, None),  # "be" says nothing of where the answer stands
    ("When was the party founded?", None, None),  # no who/what/which
    ("How many jobs will the Enbek Program create?", None, None),
])
def test_frame(finder, question, verb, role):
    frame = finder.frame(question)
    assert (frame.verb, frame.role) == (verb, role) if verb else frame is None


def _texts(text, slots, asked=True):
    return [[text[a:b] for a, b in s.spans] for s in slots if s.asked == asked]


def test_subject_slot_and_its_shorter_spans(finder):
    (slots,) = finder.slots(finder.frame("Who received Baibek?"), [RECEIVED])
    (asked,) = _texts(RECEIVED, slots)
    # The whole subject (the parser takes the dateline into it), the part after the dateline, and
    # the name without its title.
    assert asked[0].startswith("NUR-SULTAN") and asked[0].endswith("Kassym-Jomart Tokayev")
    assert "Head of State Kassym-Jomart Tokayev" in asked
    assert "Kassym-Jomart Tokayev" in asked
    # The object is the slot the question fills itself ("Baibek"): not where the answer stands.
    (other,) = _texts(RECEIVED, slots, asked=False)
    assert other[0].startswith("First DeputyChairman") and other[0].endswith("Baibek")


@pytest.mark.parametrize("question,text,expected", [
    # object of an irregular form ("became")
    ("What did the party become?", "In 2019 the party became open and accessible to citizens.",
     "open and accessible to citizens"),
    # a passive verb: the doer is the agent, the object is the passive subject
    ("Who founded the university?", "The university was founded by John Harvard in 1636.", "John Harvard"),
    ("What did Harvard establish?", "The university was established by John Harvard in 1636.", "university"),
])
def test_slot_of_the_asked_role(finder, question, text, expected):
    (slots,) = finder.slots(finder.frame(question), [text])
    assert [spans[0] for spans in _texts(text, slots)] == [expected]


class _RecordingPipeline:
    """spaCy's pipeline, recording the texts it parses."""

    def __init__(self, nlp):
        self.nlp, self.parsed = nlp, []

    def __call__(self, text):
        self.parsed.append(text)
        return self.nlp(text)

    def get_pipe(self, name):
        return self.nlp.get_pipe(name)


def test_text_without_the_verb_is_not_parsed(finder):
    recording = _RecordingPipeline(finder.nlp)
    fresh = SlotFinder(nlp=recording)
    frame = fresh.frame("Who received Baibek?")
    unrelated = "The meeting heard the reports of the Party's first deputy chairman."
    assert fresh.slots(frame, [unrelated, RECEIVED])[0] == []
    assert unrelated not in recording.parsed and RECEIVED in recording.parsed
    fresh.slots(frame, [RECEIVED])
    assert recording.parsed.count(RECEIVED) == 1  # parses are kept


@pytest.mark.parametrize("sentence,word,phrase", [
    ('N.Altayev - deputy chairman of the National Chamber of Entrepreneurs "Atameken" said.', "deputy", "deputy chairman"),
    ("He is a vice president of the bank.", "vice", "vice president"),
    ("The ruling party won the vote.", "ruling", "ruling party"),
    ("The party should become open and accessible to citizens.", "open", "open"),  # not a noun's modifier
    ("The congress elected its chairman.", "chairman", "chairman"),  # already the noun
])
def test_a_lone_modifier_ends_at_the_noun_it_modifies(finder, sentence, word, phrase):
    start = sentence.index(word)
    assert sentence[start:finder.phrase_end(sentence, start, start + len(word))] == phrase
