"""Role questions read the way the articles put them (qa/rephrase.py); the real pipeline in test_answering."""
from qa.rephrase import rephrase_role_question

PARTY = ["The chairman of the party Ermukhamet Yertysbayev went to the Karaganda region."]


def test_a_role_verb_the_articles_never_use_becomes_their_role_noun():
    assert rephrase_role_question("Who chairs the People's Party of Kazakhstan?", PARTY) == \
        "Who is the chairman of the People's Party of Kazakhstan?"
    assert rephrase_role_question("Who chaired the meeting", PARTY) == "Who was the chairman of the meeting?"
    assert rephrase_role_question("Who led the party?", ["Its leader, Ann Lee, spoke."]) == "Who was the leader of the party?"
    assert rephrase_role_question("who heads The ministry?", ["The head of the ministry, Ann Lee."]) == \
        "who is the head of the ministry?"
    # verbs ending in "e" and "ch"; a statement's full stop, stray marks; a title keeps its capital
    assert rephrase_role_question("Who managed the club?", ["Its manager was Ann Lee."]) == "Who was the manager of the club?"
    assert rephrase_role_question("Who coaches the team.", ["The coach, Ann Lee, said."]) == "Who is the coach of the team?"
    assert rephrase_role_question("Who chairs the party ?!", PARTY) == "Who is the chairman of the party?"
    assert rephrase_role_question("Who edits The Guardian?", ["Its editor, Ann Lee."]) == "Who is the editor of The Guardian?"


def test_other_questions_are_left_as_typed():
    # the articles use the question's own verb: the reader matches it as it is
    assert rephrase_role_question("Who chairs the panel?", ["She chairs the panel, the chairman said."]) == "Who chairs the panel?"
    assert rephrase_role_question("Who chairs the panel?", ["It was chaired by its chairman."]) == "Who chairs the panel?"
    # a verb of motion or standing: "heads to", "leads in"
    assert rephrase_role_question("Who heads to Karaganda?", ["The head of the party."]) == "Who heads to Karaganda?"
    assert rephrase_role_question("Who leads in the polls?", ["The party leader."]) == "Who leads in the polls?"
    # no role noun in the articles, a verb without one, a bare verb after an auxiliary, not a who-question
    assert rephrase_role_question("Who leads the party?", PARTY) == "Who leads the party?"
    assert rephrase_role_question("Who received Baibek?", PARTY) == "Who received Baibek?"
    assert rephrase_role_question("Who will chair the party?", PARTY) == "Who will chair the party?"
    assert rephrase_role_question("What chairs the party?", PARTY) == "What chairs the party?"
    assert rephrase_role_question("", PARTY) == ""
