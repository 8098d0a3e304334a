"""qa.ask end to end over the seed articles: real index, real reader, exact citations."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import DATA, ROOT

import qa
from qa.followup import resolve_followup
from qa.evaluation import answer_contains_gold, normalize_answer


def _rows():
    return [json.loads(line) for line in (DATA / "seed_questions.jsonl").read_text().splitlines() if line.strip()]


def _check_citations(index, answer):
    assert answer.citations
    for i, c in enumerate(answer.citations):
        doc = index.document(c.doc_id)
        assert doc.text[c.start:c.end] == c.text
        assert c.start <= c.answer_start < c.answer_end <= c.end
        quoted = c.text[c.answer_start - c.start:c.answer_end - c.start]
        assert doc.text[c.answer_start:c.answer_end] == quoted
        # The first citation quotes the answer exactly; others may differ in case or punctuation only.
        assert quoted == answer.text if i == 0 else normalize_answer(quoted) == normalize_answer(answer.text)
        assert c.title == doc.title and c.date == doc.date


def test_seed_questions_hold_the_measured_level(seed_index):
    """Guards what ``ask`` reaches on the seed questions: at least 13 of 15 answers contain the
    gold answer (13 with the session-12 reader, in onnxruntime fp32 and in torch bfloat16
    alike), every answer given cites the gold document, and the unanswerable question abstains.
    The closest calls: "How many people will Enbek cover?" (0.264) and "Who received Baibek?"
    (0.275) against the abstention threshold of 0.25; "Karaganda region" (0.10) and "KZT560
    billion" (0.07) abstain."""
    rows = _rows()
    contains, wrong_doc, details = 0, [], []
    for r in rows:
        answer = seed_index.ask(r["question"], history=r["history"])
        assert 0.0 <= answer.score <= 1.0
        if not r["answers"]:
            assert answer.text == "", f"{r['id']} should abstain, got {answer.text!r}"
            continue
        details.append((r["id"], answer.text, r["answers"][0]))
        contains += answer_contains_gold(answer.text, r["answers"])
        if answer.text:
            _check_citations(seed_index, answer)
        if answer.text and answer.citations[0].doc_id != r["doc"]:
            wrong_doc.append(r["id"])
        assert answer.passages and r["doc"] in [p.doc_id for p in answer.passages]
    assert contains >= 13, "\n".join(map(repr, details))
    assert wrong_doc == [], details


def test_enbek_answer_is_cited_exactly(seed_index):
    answer = seed_index.ask("How many jobs will the Enbek Program create?")
    assert answer.citations[0].doc_id == "004_c8ebc32f0d2447af"
    assert "750 thousand jobs" in answer.citations[0].text
    _check_citations(seed_index, answer)
    assert answer.passages and answer.passages[0].doc_id == "004_c8ebc32f0d2447af"


def test_enbek_answer_is_the_number_of_jobs(seed_index):
    # "coverage for about 1.5 million people creating more than 750 thousand jobs": the jobs, with
    # their qualifier and unit, not the first number of the sentence.
    assert seed_index.ask("How many jobs will the Enbek Program create?").text == "more than 750 thousand jobs"


def test_a_role_question_is_answered_where_the_article_names_the_role(seed_index):
    """Issue 10's chat example: 003 names "The chairman of the party Ermukhamet Yertysbayev";
    the reader abstained on "Who chairs ...?" (0.12) and finds him for "Who is the chairman of ...?"."""
    answer = seed_index.ask("Who chairs the People's Party of Kazakhstan?")
    assert answer.text == "Ermukhamet Yertysbayev"
    assert answer.resolved_question == "Who is the chairman of the People's Party of Kazakhstan?"
    _check_citations(seed_index, answer)
    assert answer.citations[0].doc_id.startswith("003_")


def test_follow_up_is_answered_in_context(seed_index):
    history = [("Who chairs the People's Party of Kazakhstan?", "Ermukhamet Yertysbayev")]
    follow = seed_index.ask("Which region did he go to?", history=history)
    assert follow.resolved_question == "Which region did Ermukhamet Yertysbayev go to?"
    assert "Karaganda" in follow.text
    assert follow.citations[0].doc_id == "003_8db47a1d31210196"
    # "it" after a question about a quantity points at what the question was about.
    enbek = [("How many jobs will the Enbek Program create?", "more than 750 thousand jobs")]
    cover = seed_index.ask("How many people will it cover?", history=enbek)
    assert cover.resolved_question == "How many people will the Enbek Program cover?"
    assert "1.5 million" in cover.text and cover.citations[0].doc_id == "004_c8ebc32f0d2447af"


def test_a_follow_up_reads_the_story_its_previous_answer_came_from(seed_index):
    history = [("Who chairs the People's Party of Kazakhstan?", "Ermukhamet Yertysbayev")]
    resolved = resolve_followup("Which region did he go to?", history)
    assert resolved.previous_answer == "Ermukhamet Yertysbayev"
    found = seed_index.retriever.sources(resolved.search_query, k=5)
    quoting = {s.passage.doc_id for s in found if "Ermukhamet Yertysbayev" in s.document_text}
    assert quoting and quoting != {s.passage.doc_id for s in found}  # the search alone also finds other stories
    read = seed_index.answerer.sources(resolved, k=5)
    assert {s.passage.doc_id for s in read} == quoting
    # The user's filter still holds: within it the quoting stories are kept; with none of the
    # found stories quoting the answer, the passages are the search's own.
    other = sorted({s.passage.doc_id for s in found} - quoting)[:1]
    within = seed_index.answerer.sources(resolved, k=5, filters={"doc_ids": [*quoting, *other]})
    assert {s.passage.doc_id for s in within} == quoting
    kept = seed_index.answerer.sources(resolved, k=5, filters={"doc_ids": other})
    assert kept and {s.passage.doc_id for s in kept} == set(other)
    # "What about ...?" changes the subject: no story is kept.
    swapped = resolve_followup("What about the Auyl party?", history)
    assert swapped.previous_answer == "" and seed_index.answerer.sources(swapped, k=5) == seed_index.retriever.sources(
        swapped.search_query, k=5)


def test_a_follow_up_is_embedded_once_though_searched_twice(seed_index, monkeypatch):
    embedder = seed_index.retriever.embedder
    asked = []
    real = embedder.encode_query
    monkeypatch.setattr(embedder, "encode_query", lambda q: asked.append(q) or real(q))
    history = [("Who chairs the People's Party of Kazakhstan?", "Ermukhamet Yertysbayev")]
    resolved = resolve_followup("Which region did he go to?", history)
    read = seed_index.answerer.sources(resolved, k=5)
    assert asked == [resolved.search_query]
    # the same passages as searching with the question's own vector each time
    monkeypatch.setattr(embedder, "encode_query", real)
    quoting = {s.passage.doc_id for s in seed_index.retriever.sources(resolved.search_query, k=5)
               if "Ermukhamet Yertysbayev" in s.document_text}
    assert read == seed_index.retriever.sources(resolved.search_query, k=5, filters={"doc_ids": sorted(quoting)})


def test_self_contained_question_is_not_polluted_by_history(seed_index):
    history = [("Who chairs the People's Party of Kazakhstan?", "Ermukhamet Yertysbayev")]
    for question in ("What does Bakytty Otbasy mean?", "Who received Baibek?"):
        resolved = resolve_followup(question, history)
        assert resolved.search_query == question and not resolved.is_followup
    answer = seed_index.ask("What does Bakytty Otbasy mean?", history=history)
    assert answer.text == "Happy Family" and answer.resolved_question == "What does Bakytty Otbasy mean?"


def test_unanswerable_questions_abstain_and_keep_passages(seed_index):
    for question in ("What is the capital of France?", "Who is the prime minister of Japan?"):
        answer = seed_index.ask(question)
        assert answer.text == "" and answer.citations == []
        assert answer.passages  # the UI still shows the closest passages


def test_bad_questions(seed_index):
    with pytest.raises(ValueError, match="empty"):
        seed_index.ask("   ")
    page = "Please tell me, " + "with many details and background, " * 200 + "how many jobs will the Enbek Program create?"
    assert len(page) > 5000
    answer = seed_index.ask(page)  # handled: no crash, an Answer back
    assert isinstance(answer, qa.Answer)
    assert isinstance(seed_index.ask("Сколько рабочих мест создаст программа Енбек?"), qa.Answer)


def test_alternatives_keep_competing_answers_from_other_documents(tmp_path):
    docs = tmp_path / "documents"
    docs.mkdir()
    (docs / "a2015.txt").write_text(
        "ASTANA. KAZINFORM - In 2015 the Baitak party was chaired by Azamatkhan Amirtay, who led its campaign.", encoding="utf-8")
    (docs / "b2021.txt").write_text(
        "ASTANA. KAZINFORM - In 2021 the Baitak party was chaired by Kuanysh Rakhmetov, who led its new campaign.", encoding="utf-8")
    qa.update_index(docs, tmp_path / "index")
    answer = qa.Index.load(tmp_path / "index").ask("Who chaired the Baitak party?")
    found = {answer.text} | {a.text for a in answer.alternatives}
    assert any("Amirtay" in t for t in found) and any("Rakhmetov" in t for t in found), (answer.text, found)
    docs_cited = {answer.citations[0].doc_id} | {a.citations[0].doc_id for a in answer.alternatives}
    assert docs_cited == {"a2015", "b2021"}


def test_extract_reads_a_given_context():
    context = "The meeting was held in Astana. The Enbek Program will create more than 750 thousand jobs by 2025."
    spans = qa.extract("How many jobs will the Enbek Program create?", context)
    assert "750 thousand" in spans[0].text
    assert all(context[s.start:s.end] == s.text for s in spans)


def test_cli_ask_prints_answer_and_citations(seed_index_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "qa", "ask", "How many jobs will the Enbek Program create?",
                          "--index", str(seed_index_dir)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "750 thousand" in out.stdout and "[1] 004_c8ebc32f0d2447af" in out.stdout
    empty = subprocess.run([sys.executable, "-m", "qa", "ask", " ", "--index", str(seed_index_dir)],
                           env=env, capture_output=True, text=True, timeout=300)
    assert empty.returncode == 2 and "empty" in empty.stderr and "Traceback" not in empty.stderr


def test_a_huge_history_turn_is_cut_like_a_question():
    from qa.settings import MAX_QUESTION_CHARS

    huge = "Ermukhamet Yertysbayev " * 200_000  # megabytes through /ask's history
    resolved = resolve_followup("Which region did he go to?", [("Who chairs the party?", huge)])
    assert resolved.is_followup and len(resolved.reader_question) < 2 * MAX_QUESTION_CHARS


def test_name_check_finds_country_adjectives_but_not_lookalikes():
    from qa.answering import missing_names

    # A question's demonym or possessive is found in a passage that uses the country's other form.
    assert missing_names("What did the Brazilian central bank say?", ["Brazil said on Monday."]) == []
    assert missing_names("What is Britain's trade deficit?", ["The British trade deficit widened."]) == []
    assert missing_names("What did Nigeria's oil minister say?", ["The Nigerian oil minister said."]) == []
    assert missing_names("What does Japan export?", ["Japanese exports rose."]) == []
    # Names that merely share letters are still missing: the check keeps refusing them.
    assert missing_names("What did Texaco earn in 1986?", ["Texas earned more in 1987."]) == ["Texaco", "1986"]
    assert missing_names("Who chairs the party of Kazakhstan?", ["The Kazakh party met."]) == ["Kazakhstan"]


def test_name_check_takes_an_acronym_for_the_name_the_passages_spell_out():
    from qa.answering import missing_names

    # Wire copy spells a name out where a reader writes its initials.
    assert missing_names("How much did NASA pay?", ["The National Aeronautics and Space Administration paid."]) == []
    assert missing_names("What did OPEC decide?", ["The Organization of Petroleum Exporting Countries met."]) == []
    assert missing_names("What is the U.S. deficit?", ["The United States deficit grew."]) == []
    # Other initials, or a word that is not in capitals, are still missing.
    assert missing_names("What did the IMF say?", ["The International Finance Corp said."]) == ["IMF"]
    assert missing_names("What did Nasdaq report?", ["The National Association of Securities Dealers said."]) == ["Nasdaq"]
    assert missing_names("What did the EC say?", ["The ministers of the European and Asian states met."]) == ["EC"]


def test_name_check_skips_a_later_sentence_s_opening_word_but_not_a_name():
    from qa.answering import missing_names

    # "What" opens the question's second sentence: it names nothing.
    assert missing_names("The mantle has two layers below it. What are they?", ["The mantle has two layers."]) == []
    # A name or a figure there is still checked, and so is a name after a title.
    assert missing_names("It was a merger. Chevron bought whom?", ["Gulf agreed to the merger."]) == ["Chevron"]
    assert missing_names("Did it sell 5 mln shares? 6 mln?", ["It sold 5 mln shares."]) == ["6"]
    assert missing_names("Who is Mr. Smith?", ["Mr. Jones spoke."]) == ["Smith"]


def test_name_check_forgives_a_typing_slip_an_ordinal_and_number_words():
    from qa.answering import missing_names

    # One letter added, dropped, changed or swapped in a long name is the user's typo, not another name.
    assert missing_names("Who commissioned the Gateshead Milennium Bridge?", ["The Gateshead Millennium Bridge opened."]) == []
    assert missing_names("How did Brainbridge report revenue?", ["Bainbridge reported revenue."]) == []
    assert missing_names("Who lectured on the 20th of October?", ["On 20 October he lectured."]) == []
    assert missing_names("Who lectured on October 20?", ["On October 20th he lectured."]) == []
    assert missing_names("What happened to the Three Graces?", ["The 3 Graces were bought."]) == []
    # Wire copy abbreviates months: "Jan. 14" is January, "Sept" is September, and the other way.
    assert missing_names("How many jets were grounded after the January crash?", ["after a Jan. 14 crash"]) == []
    assert missing_names("What happened in Sept 1986?", ["In September 1986 it fell."]) == []
    assert missing_names("What happened in January?", ["It fell in June."]) == ["January"]
    # ... only where it is a date: not in an ordinary word or a name, nor as the start of a name.
    assert missing_names("What happened in March?", ["Violence marred the talks."]) == ["March"]
    assert missing_names("What happened in January?", ["Jan Pronk said so."]) == ["January"]
    assert missing_names("What did Marshall say?", ["On Mar. 3 he spoke."]) == ["Marshall"]
    assert missing_names("What did Marshall say?", ["So said The. and Its. notes."]) == ["Marshall"]  # stopwords
    # ... and streets: "Ave." inside a sentence is Avenue; a word that ends a sentence is no abbreviation.
    assert missing_names("Who leases the Park Avenue offices?", ["offices on Park Ave. and signed a lease"]) == []
    assert missing_names("Who leases the Park Avenue offices?",
                         ["offices at Park Ave. Leases were signed."]) == ["Avenue"]
    # Shorter names one slip apart are other people and places; figures and other names must match.
    assert missing_names("What did Reagan say?", ["Regan said the talks went well."]) == ["Reagan"]
    assert missing_names("What did Hansen say?", ["Hanson said."]) == ["Hansen"]
    assert missing_names("What did Iran say?", ["Iraq said."]) == ["Iran"]
    assert missing_names("What did Texaco earn in 1986?", ["Texas earned more in 1987."]) == ["Texaco", "1986"]
    # A long name must be a name in the passage too, not a common word one slip away.
    assert missing_names("How did Brainbridge report revenue?", ["the bainbridge reported revenue."]) == ["Brainbridge"]
