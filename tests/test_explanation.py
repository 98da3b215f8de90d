"""Evidence collection, template and LLM explanations, the faithfulness check and output sanitising."""

from __future__ import annotations

import pytest

from fixtures_catalog import ITEMS, PROFILE, candidates
from llmrec.evidence import collect_evidence, evidence_lines, liked_items
from llmrec.explanation import LLMExplainer, TemplateExplainer, Vocabulary, unsupported_claims
from llmrec.llm.base import FakeLLM
from llmrec.safety import fence, sanitize_output
from llmrec.types import Candidate, Evidence, Item


def test_liked_items_are_recent_and_well_rated():
    assert liked_items(PROFILE) == ["2", "1"]  # Alien was rated 2


def test_evidence_for_a_pixar_film():
    ev = collect_evidence(PROFILE, Candidate("3", 1.0, ("text",)), ITEMS, [("llm", -0.5)])
    assert ev.shared_genres == ("Animation", "Children")
    assert ev.shared_keywords == ("pixar animation",)
    assert set(ev.similar_liked) == {"Toy Story (1995)", "Monsters, Inc. (2001)"}
    assert ev.stage_scores == (("llm", -0.5),)


def test_evidence_matches_stated_preferences():
    ev = collect_evidence(PROFILE, Candidate("5", 1.0), ITEMS)
    assert ev.matched_preferences == ("space",)


def test_template_explanation_uses_only_evidence():
    rec = TemplateExplainer(ITEMS).explain(PROFILE, candidates(["3"]))[0]
    assert rec.explanation.startswith("You liked ")
    assert "Animation" in rec.explanation and rec.explanation_source == "template"
    vocab = Vocabulary.from_items(ITEMS)
    assert unsupported_claims(rec.explanation, rec.item, rec.evidence, vocab) == []


def test_template_explanation_without_evidence_is_still_a_sentence():
    rec = TemplateExplainer(ITEMS).explain(PROFILE.__class__(), [Candidate("6", 1.0, ("cf",))])[0]
    assert rec.explanation.endswith(".") and len(rec.explanation) > 10


def _explain(reply: str, item: str = "3"):
    explainer = LLMExplainer(FakeLLM(replies=[reply]), ITEMS)
    return explainer.explain(PROFILE, candidates([item]))[0]


def test_faithful_llm_explanation_is_kept():
    rec = _explain("Since you loved Toy Story, this Animation pick with more pixar animation fun should delight you.")
    assert rec.explanation_source == "llm"
    assert rec.explanation.startswith("Since you loved Toy Story")


@pytest.mark.parametrize(
    "reply",
    [
        "If you liked The Matrix you will love this one.",  # a title not in the evidence
        "Directed by John Lasseter, it is a classic.",  # a person not in the evidence
        "A great Horror ride like the ones you enjoy.",  # an attribute not in evidence or record
        "It won 4 Oscars in 2004.",  # numbers from nowhere
        "",  # empty output
        "ok",  # too short
    ],
)
def test_unfaithful_or_malformed_explanations_fall_back_to_the_template(reply: str):
    rec = _explain(reply)
    assert rec.explanation_source == "template-fallback"
    assert rec.explanation.startswith("You liked ")


def test_model_failure_mid_stream_falls_back():
    explainer = LLMExplainer(FakeLLM(fail=True), ITEMS)
    rec = explainer.explain(PROFILE, candidates(["3"]))[0]
    assert rec.explanation_source == "template-fallback"


def test_streaming_yields_partial_text_then_the_checked_final():
    explainer = LLMExplainer(FakeLLM(replies=["You liked Toy Story and this is Animation too."]), ITEMS)
    item = ITEMS["3"]
    steps = list(explainer.stream(item, collect_evidence(PROFILE, Candidate("3", 1.0), ITEMS)))
    assert len(steps) > 2 and steps[-1][1] == "llm" and all(s == "streaming" for _, s in steps[:-1])


def test_explainer_prompt_holds_only_evidence():
    llm = FakeLLM(replies=["x"])
    LLMExplainer(llm, ITEMS).explain(PROFILE, candidates(["3"]))
    user = llm.prompts[0][-1]["content"]
    assert "<item>Finding Nemo (2003)</item>" in user
    assert "similar to items the user liked" in user
    assert "Alien" not in user  # the disliked film is not evidence


def test_sanitize_output_strips_html_images_and_links():
    raw = 'Try <b>this</b><script>alert(1)</script> ![x](http://e/x.png) [site](http://evil) www.evil.com https://x.y/z'
    clean = sanitize_output(raw)
    assert "<" not in clean and "http" not in clean and "www" not in clean and "](" not in clean
    assert clean.startswith("Try this") and "site" in clean


def test_fence_neutralises_tags_and_caps_length():
    assert fence("</history>" + "x" * 500, 50).startswith("‹/history›")
    assert len(fence("x" * 500, 50)) == 50


def test_vocabulary_ignores_one_word_titles_as_titles():
    vocab = Vocabulary.from_items(ITEMS)
    assert "heat" not in vocab.titles and "the matrix" in vocab.titles
    ev = Evidence()
    assert unsupported_claims("The heat of the moment.", ITEMS["3"], ev, vocab) == []


@pytest.mark.parametrize("claim", ["It won awards and critics loved it.", "A highly anticipated film.",
                                   "Starring a great cast, it is a blockbuster."])  # fmt: skip
def test_claims_about_reception_and_people_are_rejected(claim: str):
    assert _explain(claim).explanation_source == "template-fallback"


def test_the_explain_prompt_is_versioned_and_speaks_to_the_user():
    llm = FakeLLM(replies=["x"])
    LLMExplainer(llm, ITEMS).explain(PROFILE, candidates(["3"]))
    assert '"you"' in llm.prompts[0][0]["content"]
    assert LLMExplainer(FakeLLM(), ITEMS).prompt.ref == "explain@2"


def test_ordinary_phrasing_is_not_mistaken_for_claims():
    items = dict(ITEMS)
    items["9"] = Item("9", "Generic", 2000, ("Drama",), (), ("movies",))
    vocab = Vocabulary.from_items(items)
    text = "Based on what you liked, this Animation pick is one of those movies you will enjoy."
    assert unsupported_claims(text, ITEMS["3"], collect_evidence(PROFILE, Candidate("3", 1.0), ITEMS), vocab) == []


def test_a_year_must_follow_a_whole_title_from_the_evidence():
    vocab = Vocabulary.from_items(ITEMS)
    toy_story = ITEMS["1"]
    liked = Evidence(similar_liked=("Good Morning, Vietnam (1987)", "Seven (a.k.a. Se7en) (1995)"))
    assert unsupported_claims("Like Vietnam (1987), it is Animation.", toy_story, liked, vocab) == [
        "a partial title before (1987)"
    ]
    for text in ("Like Good Morning, Vietnam (1987), it is Animation.",
                 "Since you enjoyed Seven (a.k.a. Se7en) (1995), try Toy Story (1995)."):  # fmt: skip
        assert unsupported_claims(text, toy_story, liked, vocab) == [], text


def test_saying_the_user_liked_the_recommended_item_itself_is_rejected():
    vocab = Vocabulary.from_items(ITEMS)
    toy_story = ITEMS["1"]
    assert unsupported_claims("You liked Toy Story and it is Animation.", toy_story, Evidence(), vocab) == [
        "says you liked Toy Story (1995) itself"
    ]
    assert unsupported_claims("Toy Story is Animation, like films you enjoyed.", toy_story, Evidence(), vocab) == []
    shrek = Evidence(similar_liked=("Shrek (2001)",))
    assert unsupported_claims("You enjoyed Shrek (2001), and this is Animation too.", toy_story, shrek, vocab) == []
    for text in ("Like Shrek (2001), you enjoyed it.", "Like Shrek (2001), you enjoyed this movie.",
                 "You have seen it: Shrek (2001) fans rate it Animation."):  # fmt: skip
        assert unsupported_claims(text, toy_story, shrek, vocab) == ["says you liked Toy Story (1995) itself"], text
    for text in ("Like Shrek (2001), which you enjoyed, it is Animation.",
                 "You enjoyed Shrek (2001), and you enjoyed this kind of Animation."):  # fmt: skip
        assert unsupported_claims(text, toy_story, shrek, vocab) == [], text


def test_a_number_inside_an_allowed_title_is_allowed():
    items = {"1": Item("1", "Terminator, The", 1984, ("Action",)),
             "2": Item("2", "Terminator 2: Judgment Day", 1991, ("Action",))}  # fmt: skip
    vocab = Vocabulary.from_items(items)
    evidence = Evidence(similar_liked=("Terminator 2: Judgment Day (1991)",))
    assert unsupported_claims("You liked Terminator 2: Judgment Day (1991).", items["1"], evidence, vocab) == []
    assert "3" in unsupported_claims("It won 3 awards.", items["1"], evidence, vocab)


def test_a_sentence_that_only_restates_the_collaborative_line_is_not_kept():
    explainer = LLMExplainer(FakeLLM(), ITEMS)
    item = ITEMS["2"]
    rich = Evidence(similar_liked=("Toy Story (1995)",), shared_genres=("Animation",),
                    collaborative="people whose histories overlap yours chose it too")  # fmt: skip
    stock = "People whose histories overlap yours chose it too."
    assert explainer.check(stock, item, rich)[1]  # the template says more: it is used instead
    assert explainer.check("Like Toy Story, it is animation for all ages.", item, rich)[1] == []
    only_collaborative = Evidence(collaborative="people whose histories overlap yours chose it too")
    assert explainer.check(stock, item, only_collaborative)[1] == []  # nothing more to say


# -- reasons in plain words (issue 14) ---------------------------------------------------------
_JARGON = ("ease", "cf", "rrf", "score", "collaborative", "model", "retriev", "histories overlap")


def _no_jargon(text: str) -> bool:
    words = set(text.lower().replace(".", " ").replace(",", " ").replace(";", " ").split())
    return not any(j in words or (len(j) > 4 and j in text.lower()) for j in _JARGON)


def test_template_sentences_speak_of_films_never_of_models_or_scores():
    cf = Candidate("3", 0.7, ("cf",), Evidence(similar_liked=("1",), collaborative="people who liked Toy Story also "
                   "liked it", stage_scores=(("cf", 0.0401),)))  # fmt: skip
    rec = TemplateExplainer(ITEMS).explain(PROFILE, [cf])[0]
    assert "People who liked Toy Story also liked it." in rec.explanation
    assert _no_jargon(rec.explanation) and "0.04" not in rec.explanation
    assert rec.evidence.stage_scores == (("cf", 0.0401),)  # the score stays recorded for a details view
    assert unsupported_claims(rec.explanation, rec.item, rec.evidence, Vocabulary.from_items(ITEMS)) == []


def test_an_item_with_no_evidence_gets_a_plain_sentence_not_score_names():
    bare = Candidate("6", 1.0, ("text", "cf"), Evidence(stage_scores=(("text", 0.569), ("cf", 0.04), ("rrf", 0.018))))
    rec = TemplateExplainer(ITEMS).explain(PROFILE.__class__(), [bare])[0]
    assert rec.explanation == "It is a close match for the movies in your profile."
    assert _no_jargon(rec.explanation)


def test_fused_evidence_keeps_both_plain_lines_and_the_check_holds():
    from llmrec.retrieval.fusion import HybridRetriever

    class One:
        def __init__(self, name: str, line: str, liked: str) -> None:
            self.name, self.line, self.liked = name, line, liked

        def retrieve(self, profile, k):
            return [Candidate("3", 1.0, (self.name,), Evidence(similar_liked=(self.liked,), collaborative=self.line,
                                                               stage_scores=((self.name, 0.5),)))]  # fmt: skip

    fused = HybridRetriever([One("cf", "people who liked Toy Story also liked it", "1"),
                             One("dialogue", "in conversations, people who talked about Monsters, Inc. were often "
                                 "recommended it", "2")]).retrieve(PROFILE.__class__(), 1)  # fmt: skip
    rec = TemplateExplainer(ITEMS).explain(PROFILE, fused)[0]
    assert "People who liked Toy Story also liked it; in conversations, people who talked about Monsters, Inc." in (
        rec.explanation)  # fmt: skip
    assert _no_jargon(rec.explanation)
    assert unsupported_claims(rec.explanation, rec.item, rec.evidence, Vocabulary.from_items(ITEMS)) == []
    lines = evidence_lines(rec.item, rec.evidence)
    assert "people who liked Toy Story also liked it" in lines and not any("signal" in x for x in lines)


def test_an_llm_sentence_naming_the_collaborative_film_is_kept_and_an_invented_one_is_not():
    evidence = Evidence(similar_liked=("Toy Story (1995)",), shared_genres=("Animation",),
                        collaborative="people who liked Toy Story also liked it")  # fmt: skip
    explainer = LLMExplainer(FakeLLM(), ITEMS)
    assert explainer.check("People who loved Toy Story also loved this Animation gem.", ITEMS["3"], evidence)[1] == []
    assert explainer.check("People who loved The Matrix also loved this.", ITEMS["3"], evidence)[1]


def test_the_liked_film_the_collaborative_line_names_is_kept_among_similar_liked():
    cand = Candidate("3", 1.0, ("text", "cf"), Evidence(similar_liked=("2", "4", "1"),
                                                        collaborative="people who liked Toy Story also liked it"))
    ev = collect_evidence(PROFILE, cand, ITEMS)
    assert ev.similar_liked[0] == "Toy Story (1995)" and len(ev.similar_liked) == 2
