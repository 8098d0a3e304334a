"""Reading windows, span completion and candidate features (``qa/candidates.py``)."""
from __future__ import annotations

import json

import pytest

from qa import models
from qa.answering import Answerer
from qa.candidates import FEATURES, AskedFor, _has_shape, complete_span, reading_windows, terms_of
from qa.chunking import sentence_spans
from qa.settings import AnswerSettings
from qa.types import Passage, Source

MAX_WINDOWS = AnswerSettings().max_windows


def _reads(parser: bool = True) -> Answerer:
    """The shipped reader (and parser) reading given sources, as ``ask`` reads retrieved ones."""
    return Answerer(None, models.reader(), models.parser() if parser else None, None)


def _complete(question: str, text: str, span: str) -> str:
    start = text.index(span)
    a, b = complete_span(text, start, start + len(span), len(text), AskedFor.of(question))
    return text[a:b]


@pytest.mark.parametrize("question,text,span,expected", [
    # a figure keeps its qualifier and, for "how many jobs", the counted thing
    ("How many jobs will the Enbek Program create?",
     "Enbek will cover about 1.5 million people creating more than 750 thousand jobs.", "750 thousand",
     "more than 750 thousand jobs"),
    # a money amount keeps its currency, a range its start
    ("By how much has Kazakhstan's GDP grown?",
     "Kazakhstan's GDP has grown from 11 billion to 170.5 billion US dollars.", "170.5 billion",
     "from 11 billion to 170.5 billion US dollars"),
    ("By how much has Kazakhstan's GDP grown?",
     "Kazakhstan's GDP has grown from 11 billion to 170.5 billion US dollars.", "11 billion to 170.5 billion",
     "from 11 billion to 170.5 billion US dollars"),
    ("What did it cost?", "It cost $40 million in 2019.", "40 million", "$40 million"),
    # "which region" keeps the noun it asked about
    ("Which region is May JSC in?", "May JSC in the East Kazakhstan region is large.", "East Kazakhstan",
     "East Kazakhstan region"),
    # nothing to add: the span stays as it is
    ("How many headquarters were set up?", "There are 16 regional and 208 territorial headquarters.", "16", "16"),
    ("Who chairs the party?", "The party is chaired by Ermukhamet Yertysbayev since 2020.", "Ermukhamet Yertysbayev",
     "Ermukhamet Yertysbayev"),
    ("What share is poor?", "Today the share has dropped to 4.6%. Next year", "4.6%", "4.6%"),
    # news agencies' figures: "mln", "dlrs", "stg", "pct", a currency in the singular
    ("How much will the bank lend?", "The bank will lend 105 mln Australian dlrs next year.", "105 mln",
     "105 mln Australian dlrs"),
    ("How much did the fund hold?", "The fund held 2.54 billion stg at the end of May.", "2.54 billion",
     "2.54 billion stg"),
    ("How big is the loan?", "It is a three billion franc loan.", "three billion", "three billion franc"),
    ("How many customers does the firm have?", "The firm has about two mln customers.", "two",
     "about two mln customers"),
    ("By how much did prices rise?", "Prices rose 4.6 pct in May.", "4.6", "4.6 pct"),
    ("By how much did prices rise?", "Prices rose 8-1/2 per cent in May.", "8-1/2", "8-1/2 per cent"),
    # the counted noun ends at the question's verb: "banks", not "banks were"
    ("How many banks were disqualified?", "In all 17 banks were disqualified on Friday.", "17", "17 banks"),
    # a counted noun phrase is taken whole, or from a later word to its head noun, never cut inside
    ("How many Piedmont Aviation shares did Norfolk buy?", "It bought 2,292,599 Piedmont Aviation shares.", "2,292,599",
     "2,292,599 Piedmont Aviation shares"),
    ("How many Piedmont Aviation shares did Norfolk buy?", "It bought 2,292,599 shares of Piedmont.", "2,292,599", "2,292,599 shares"),
    ("How many Piedmont Aviation shares did Norfolk buy?", "It bought 2,292,599 Piedmont Aviation Inc shares.", "2,292,599", "2,292,599"),
    ("How many regional headquarters were set up?", "There are 16 regional and 208 district ones.", "16", "16 regional"),
    ("How many tonnes of sugar were sold?", "It sold 5,000 tonnes of sugar.", "5,000", "5,000 tonnes"),
    ("How many people attended the rally?", "Exactly 500 people attended it.", "500", "500 people"),
    ("How many skilled workers were hired?", "It hired 300 skilled workers.", "300", "300 skilled workers"),
    ("How many of the banks were disqualified?", "In all 17 banks were disqualified.", "17", "17 banks"),
    # the text's phrase may end before the question's: at a preposition, a verb, a function word
    ("How many people live in Almaty?", "There are 1.5 million people in Almaty.", "1.5 million", "1.5 million people"),
    ("How many people died in the crash?", "In all 12 people were killed.", "12", "12 people"),
    ("How many tonnes a year does it make?", "It makes 500,000 tonnes a year.", "500,000", "500,000 tonnes"),
    # a five-word phrase keeps its head noun
    ("How many Piedmont Aviation Inc common shares did Norfolk buy?", "It bought 2,292,599 common shares.", "2,292,599",
     "2,292,599 common shares"),
])
def test_complete_span(question, text, span, expected):
    assert _complete(question, text, span) == expected


@pytest.mark.parametrize("question,span,expected", [
    ("How many regional headquarters were set up?", "16 regional and 208", (0, 2)),  # the count the question's words follow
    ("How many territorial headquarters were set up?", "16 regional and 208", None),  # not the first count's: left whole
    ("How many headquarters were set up?", "16 regional", None),  # one count
])
def test_two_coordinated_counts_are_cut_to_the_asked_one(question, span, expected):
    from qa.candidates import _first_of_figures

    text = f"There are {span} territorial headquarters."
    start = text.index(span)
    a, b = _first_of_figures(text, start, start + len(span), AskedFor.of(question))
    assert (a - start, b - start) == (expected or (0, len(span)))


@pytest.mark.parametrize("text,span,expected", [
    ("The bank cut its rate to 8-1/2 pct from 8-3/4 pct on Monday.", "8-1/2 pct from 8-3/4 pct", "8-1/2 pct"),
    ("It earned 43 mln francs against losses of 968 mln.", "43 mln francs against losses of 968 mln", "43 mln francs"),
    ("Debt was 16.8 billion dlrs at end-1986, up from 15.2 billion.",
     "16.8 billion dlrs at end-1986, up from 15.2 billion", "16.8 billion dlrs"),
    ("Sales fell to $40 million from $52 million.", "$40 million from $52 million", "$40 million"),
    ("Sales rose 5 pct, compared with 4 pct in 1985.", "5 pct, compared with 4 pct", "5 pct"),
    ("Output was 500 tonnes against 400 tonnes.", "500 tonnes against 400 tonnes", "500 tonnes"),
    ("It pumps 15.8 mln bpd, down from 16.1 mln.", "15.8 mln bpd, down from 16.1 mln", "15.8 mln bpd"),
    ("It pays 17.52 dlrs a barrel against 18 dlrs.", "17.52 dlrs a barrel against 18 dlrs", "17.52 dlrs a barrel"),
    # left whole: a range; a figure compared with no figure; a comparison the span does not open
    # with a figure for; a figure that is part of a word
    ("GDP has grown from 11 billion to 170.5 billion US dollars.", "11 billion to 170.5 billion", None),
    ("Profit was 12 mln dlrs against expectations.", "12 mln dlrs against expectations", None),
    ("The rate rose to 5 pct from 4 pct.", "rose to 5 pct from 4 pct", None),
    ("It sold 20th Century Fox from 1985 on.", "20th Century Fox from 1985", None),
    ("3Com Corp bought it from 3 holders.", "3Com Corp bought it from 3 holders", None),
])
def test_a_figure_is_cut_from_the_figure_it_is_compared_with(text, span, expected):
    from qa.candidates import _before_comparison

    start = text.index(span)
    assert text[start:_before_comparison(text, start, start + len(span), "number")] == (expected or span)


def test_a_date_is_not_cut_from_what_it_is_compared_with():
    from qa.candidates import _before_comparison

    text = "It closed on 14 March, up from 12 a year ago."
    span = "14 March, up from 12"
    start = text.index(span)
    assert _before_comparison(text, start, start + len(span), "date") == start + len(span)
    assert _before_comparison(text, start, start + len(span), "number") == start + len("14 March")


@pytest.mark.parametrize("question,text,span,expected", [
    ("What is the bank's new rate?", "The bank cut its rate to 8-1/2 pct from 8-3/4 pct on Monday.",
     "8-1/2 pct from 8-3/4 pct", "8-1/2 pct"),
    ("How much foreign debt did Greece have?", "Debt was 16.8 billion dlrs at end-1986, up from 15.2 billion.",
     "16.8 billion dlrs at end-1986, up from 15.2 billion", "16.8 billion dlrs"),
])
def test_a_compared_figure_keeps_its_unit(question, text, span, expected):
    from qa.candidates import _before_comparison

    start = text.index(span)
    asked = AskedFor.of(question)
    end = _before_comparison(text, start, start + len(span), asked.answer_type)
    a, b = complete_span(text, start, end, len(text), asked)
    assert text[a:b] == expected


@pytest.mark.parametrize("question,text,span,expected", [
    ("What percentage of Unitel's stock do they hold?", None, None, "15.2 pct"),
    ("How many Unitel shares do they hold?", None, None, "329,225 common shares"),
    ("Who holds Unitel's stock?", None, None, "329,225 common shares, or 15.2 pct"),  # not asked for: left whole
    # an either/or is no quantity said twice: left whole
    ("What percentage will prices rise?", "Prices will rise 5 or 6 pct.", "5 or 6 pct", "5 or 6 pct"),
    ("What percentage do they hold?", "They hold 20 mln shares, or more than 15 pct.",
     "20 mln shares, or more than 15 pct", "more than 15 pct"),
])
def test_a_quantity_said_two_ways_is_cut_to_the_asked_way(question, text, span, expected):
    from qa.candidates import _asked_expression

    text = text or "They hold 329,225 common shares, or 15.2 pct, of Unitel."
    span = span or "329,225 common shares, or 15.2 pct"
    start = text.index(span)
    a, b = _asked_expression(text, start, start + len(span), AskedFor.of(question).answer_type)
    assert text[a:b] == expected


@pytest.mark.parametrize("span,expected", [
    ("BRKN.S", ""),  # a code is no answer
    ("BRKN", ""),  # nor part of one
    ("The Broken Hill Pty Co Ltd <BRKN.S", "The Broken Hill Pty Co Ltd"),  # the name before it is
    ("Broken Hill Pty Co Ltd <BRKN.S> (BHP)", "Broken Hill Pty Co Ltd"),
    ("BRKN.S> (BHP) and", "(BHP) and"),
    ("BHP Gold Mines Ltd", "BHP Gold Mines Ltd"),  # a name in brackets is a name
    ("Ford Motor Co <F", "Ford Motor Co"),
    ("Ford Motor Co <F> would", "Ford Motor Co"),
])
def test_a_stock_code_is_cut_from_an_answer(span, expected):
    from qa.candidates import _outside_codes

    text = "The Broken Hill Pty Co Ltd <BRKN.S> (BHP) and <BHP Gold Mines Ltd> said Ford Motor Co <F> would."
    start = text.index(span)
    a, b = _outside_codes(text, start, start + len(span))
    assert text[a:b] == expected


def test_completion_stays_inside_the_window():
    text = "It will create 750 thousand jobs."
    start = text.index("750")
    a, b = complete_span(text, start, start + len("750 thousand"), text.index(" jobs"), AskedFor.of("How many jobs?"))
    assert text[a:b] == "750 thousand"


def test_asked_for():
    asked = AskedFor.of("How many regional headquarters were set up for the campaign?")
    assert asked.units == ("region", "headquart") and asked.answer_type == "number"
    assert "how" not in asked.terms and "region" in asked.terms
    assert AskedFor.of("Who received Baibek?").answer_type == "person"
    assert AskedFor.of("Where did the chairman go?").answer_type == "place"
    assert AskedFor.of("When was the congress held?").answer_type == "date"
    assert AskedFor.of("What share of the population is below the poverty line today?").answer_type == "percent"
    assert AskedFor.of("How much money goes to drinking water over the next three years?").answer_type == "money"
    assert AskedFor.of("How much did the stadium cost?").answer_type == "money"
    assert AskedFor.of("How much water flows through the dam?").answer_type == "number"
    assert AskedFor.of("How many banks were disqualified from the auction?").units == ("bank",)
    assert AskedFor.of("How many people will the Enbek Program cover?").units == ("peopl",)
    assert AskedFor.of("How many sugar beet growers protested in Paris?").units == ("sugar", "beet", "grower")
    assert AskedFor.of("How many people attended the rally?").units == ("peopl",)
    assert AskedFor.of("How many tonnes, in all, were sold?").units == ("tonn",)
    assert AskedFor.of("How many United Airlines flights were cancelled?").units == ("unit", "airlin", "flight")
    assert AskedFor.of("Which region is it in?").head == "region"
    assert AskedFor.of("What does Bakytty Otbasy mean?").answer_type is None
    weighted = AskedFor.of("What issues did NSDP candidates focus on?", idf=lambda terms: {t: 3.0 if t == "nsdp" else 1.0 for t in terms})
    assert weighted.coverage({"nsdp"}) == pytest.approx(3.0 / (3.0 + 3 * 1.0))
    assert weighted.coverage(set()) == 0.0


def test_number_words_match_digits():
    asked = AskedFor.of("How much money goes to drinking water over the next three years?")
    assert "3" in asked.terms
    assert asked.coverage(set(terms_of("In the next 3 years, KZT560 billion will provide drinking water."))) > \
        asked.coverage(set(terms_of("In the next years, KZT560 billion will provide drinking water.")))


def _source(doc_id: str, text: str):
    passage = Passage(text=text, doc_id=doc_id, title=None, date=None, start=0, end=len(text), score=1.0, chunk_id=f"{doc_id}#0")
    return Source(passage, text, sentence_spans(text))


def test_windows_keep_to_the_paragraph_and_prefer_covering_passages():
    news = ("The coordinator met the staff of a waste company. Acute issues of the region were raised.\n"
            "Candidates from the NSDP met voters in the Akmola region. They focused on problems in the healthcare system. "
            "They called for free medical services and a review of the insurance system.")
    unrelated = [_source(f"other{i}", "The weather was cold and windy on Monday in the capital.") for i in range(MAX_WINDOWS)]
    windows = reading_windows(AskedFor.of("What issues did NSDP candidates focus on in the Akmola region?"),
                              unrelated + [_source("news", news)])
    assert len(windows) == MAX_WINDOWS
    assert windows[-1].passage.doc_id == "news"  # ranked last by retrieval, but it covers the question
    # the window grows within its paragraph, not into the previous story's "Acute issues"
    assert windows[-1].text.startswith("Candidates from the NSDP") and "Acute" not in windows[-1].text
    # a headline alone is too short: its window takes the next paragraph too
    headline = "Nazarbayev meets Nur Otan regional branches\n\nIndependence Palace, Nur-Sultan\n\nThe meeting was attended by deputies."
    (window,) = reading_windows(AskedFor.of("Where did the meeting with Nur Otan regional branches take place?"),
                                [_source("h", headline)])
    assert "Independence Palace" in window.text


def test_candidates_carry_every_feature_the_scorer_weighs():
    shipped = json.loads(AnswerSettings().scorer_file.read_text())
    assert shipped["features"] == list(FEATURES), "answerer.json is stale: run python scripts/answerer/train.py"
    text = "Next 2 years, Enbek Program will provide coverage for about 1.5 million people creating more than 750 thousand jobs."
    candidates = _reads().read("How many jobs will the Enbek Program create?", [_source("enbek", text)]).candidates
    assert candidates
    for c in candidates:
        assert set(c.features) == set(FEATURES)
        assert text[c.doc_start:c.doc_end] == c.text and c.reader_text in c.text
    jobs = next(c for c in candidates if "750" in c.text)
    assert jobs.text == "more than 750 thousand jobs" and jobs.features["unit_match"] == 1.0


def test_a_lone_modifier_is_completed_to_its_noun_when_a_parser_reads():
    text = 'Altayev, deputy chairman of the National Chamber of Entrepreneurs "Atameken", spoke.'
    from qa.candidates import _modified_noun_end

    sentences = sentence_spans(text)
    a = text.index("deputy")
    b = a + len("deputy")
    assert text[a:_modified_noun_end(models.parser(), text, sentences, a, b, None)] == "deputy chairman"
    assert _modified_noun_end(None, text, sentences, a, b, None) == b  # no parser: as the reader gave it
    assert _modified_noun_end(models.parser(), text, sentences, a, b, "number") == b  # a count's lone word is dropped instead


def test_the_slot_of_the_asked_role_gives_a_candidate_the_reader_missed():
    # The reader's own best spans for "Who received Baibek?" in this sentence are the title next to
    # Baibek ("DeputyChairman"); the subject of "received" comes from its slot.
    text = ("NUR-SULTAN.KAZINFORM - Head of State Kassym-Jomart Tokayev has received today First DeputyChairman "
            "of the Nur Otan Party Bauyrzhan Baibek, Kazinform cites the pressservice of Akorda.")
    candidates = _reads().read("Who received Baibek?", [_source("akorda", text)]).candidates
    by_text = {c.text: c.features for c in candidates}
    name = next(t for t in by_text if t.endswith("Kassym-Jomart Tokayev"))
    assert by_text[name]["slot_best"] == 1.0 and by_text[name]["outside_slot"] == 0.0
    # "DeputyChairman" is in the object's slot, which the question fills itself with Baibek.
    assert by_text["DeputyChairman"]["other_slot"] == 1.0 and by_text["DeputyChairman"]["outside_slot"] == 1.0
    # Without a parser no candidate is in a slot.
    plain = _reads(parser=False).read("Who received Baibek?", [_source("akorda", text)]).candidates
    assert all(c.features[f] == 0.0 for c in plain for f in ("outside_slot", "slot_best", "from_slot", "other_slot"))


@pytest.mark.parametrize("question,answer,fits", [
    ("What share of the population is below the poverty line today?", "4.6%", True),
    ("What share of the population is below the poverty line today?", "third", False),
    ("How much money goes to drinking water over the next three years?", "KZT560 billion", True),
    ("How much money goes to drinking water over the next three years?", "about 1.5 million", False),
    ("When was the congress held?", "February 2019", True),
    ("When was the congress held?", "the Independence Palace", False),
    ("How many jobs will the Enbek Program create?", "more than 750 thousand jobs", True),
    ("Who received Baibek?", "Kassym-Jomart Tokayev", True),
    ("Who received Baibek?", "the press service", False),
    ("What percentage of the shares does it own?", "80 pct", True),
    ("How much money did the company earn?", "105 mln Australian dlrs", True),
    ("How much money did the company earn?", "60 billion U.S. Dlrs", True),
    ("How much money did the company earn?", "the dollar", False),
])
def test_answer_shape_fits_the_kind_of_question(question, answer, fits):
    assert _has_shape(answer, AskedFor.of(question).answer_type) == fits


def test_an_answer_stays_in_its_sentence_and_is_a_phrase():
    from qa.candidates import _is_phrase, _within_sentence

    text = "GDP grew from 11 billion to 170.5 billion US dollars. If in the early 90s more than a third were poor."
    sentences = sentence_spans(text)
    a = text.index("from 11")
    b = text.index("a third") + len("a third")
    a2, b2 = _within_sentence(text, sentences, a, b)
    assert text[a2:b2] == "from 11 billion to 170.5 billion US dollars"
    assert _complete("Who received Baibek?", "Head of State Kassym-Jomart Tokayev has received Baibek.", "Tokayev") == \
        "Kassym-Jomart Tokayev"
    assert not _is_phrase("the", None) and not _is_phrase("of", "person")
    assert not _is_phrase("regional", "number") and _is_phrase("16", "number") and _is_phrase("three", "number")
    assert _is_phrase("healthcare", None) and _is_phrase("Karaganda", "place") and _is_phrase("16 regional", "number")
    assert _is_phrase("monks", "person") and _is_phrase("summer", "date") and _is_phrase("today", "date")


def test_today_also_stands_as_the_articles_date_line():
    from qa.candidates import Candidate, Window, _dated, date_line

    text = ("Tokayev: Nur Otan Party should become open and accessible to citizens\n\n26 July 2019, 17:00\n\n"
            "NUR-SULTAN.KAZINFORM - Head of State Kassym-Jomart Tokayev has received today Bauyrzhan Baibek.")
    a = text.index("today")
    passage = Passage(text=text[a - 40:], doc_id="akorda", title=None, date="2019-07-26", start=a - 40, end=len(text),
                      score=1.0, chunk_id="akorda#1")
    window = Window(passage, a - 40, len(text), text[a - 40:], sentence_spans(text[a - 40:], a - 40), text, 1.0)
    today = Candidate("today", a, a + 5, passage, "today", {"type_match": 0.0, "type_mismatch": 1.0})
    (dated,) = _dated([today], [window], {"today": {0}})
    assert dated.text == "26 July 2019" == text[dated.doc_start:dated.doc_end]
    # Cited with its own line, so the citation quotes the article where the answer stands.
    assert dated.passage.text == "26 July 2019, 17:00"
    assert dated.passage.start <= dated.doc_start and dated.doc_end <= dated.passage.end
    assert dated.features["type_match"] == 1.0 and dated.features["type_mismatch"] == 0.0
    assert date_line("No date line.\nJust text that goes on for a while.") is None


def test_read_gives_no_candidates_when_the_sources_lack_a_name_of_the_question():
    text = "Next 2 years, Enbek Program will provide coverage for about 1.5 million people creating more than 750 thousand jobs."
    reading = _reads().read("How many jobs will the Enbek Program create in Almaty?", [_source("enbek", text)])
    assert reading.candidates == [] and reading.missing_names == ("Almaty",)
    assert _reads().read("How many jobs will the Enbek Program create?", [_source("enbek", text)]).missing_names == ()


def test_coverage_is_the_same_whatever_order_the_terms_come_in():
    # A set's order changes with Python's hash seed, and a plain float sum's last bit with it,
    # which swapped windows of equal coverage between runs (and the answer scorer's fit with them).
    import itertools

    weights = {"a": 4.238, "b": 3.814, "c": 2.161, "d": 1.369, "e": 2.605}
    window = {"a", "b", "c"}
    orders = [dict(p) for p in itertools.permutations(weights.items())]
    naive = {sum(w for t, w in o.items() if t in window) / sum(o.values()) for o in orders}
    assert len(naive) > 1  # the trap this avoids
    assert {AskedFor(frozenset(o), o, (), None, None).coverage(window) for o in orders} == {10.213 / 14.187}
