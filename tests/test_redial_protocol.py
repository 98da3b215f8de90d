"""The ReDial protocol on a hand-made fixture: loading, turns, targets, repeats, context, recall counting,
and the ReDial catalogue mapped to MovieLens by title and year."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from llmrec.data.redial import (
    LoadReport,
    dialogue_turns,
    load_dialogues,
    load_movies_all,
    load_redial_catalogue,
    protocol_hits,
    protocol_samples,
    title_index,
    written_out,
)
from llmrec.errors import DataError
from llmrec.types import Item

FIXTURE = Path(__file__).parent / "data" / "redial_tiny.jsonl"


@pytest.fixture(scope="module")
def dialogues():
    report = LoadReport()
    found = load_dialogues(FIXTURE, report)
    return found, report


def test_bad_lines_are_skipped_and_counted(dialogues):
    found, report = dialogues
    assert [d.conversation_id for d in found] == ["1", "2"]
    assert report.lines == 4
    assert report.skipped == Counter({"lines that are not JSON": 1, "dialogue without messages": 1})
    assert "2 dialogues from 4 lines" in report.describe()


def test_a_missing_file_is_a_clear_data_error(tmp_path):
    with pytest.raises(DataError, match="missing ReDial file"):
        load_dialogues(tmp_path / "nope.jsonl")


def test_turns_merge_a_speakers_messages_and_drop_empty_ones_and_unknown_ids(dialogues):
    counts: Counter = Counter()
    turns = dialogue_turns(dialogues[0][0], counts)
    assert [t.by_seeker for t in turns] == [False, True, False, True, False]
    assert turns[1].texts == ("I loved @111", "and @222 too") and turns[1].movies == ("111", "222")
    assert turns[2].movies == ("333", "111")  # @999 is not named by the dialogue
    assert turns[3].texts == ("Seen @333, what else?",)
    assert counts == Counter({"mentions of ids the dialogue does not name": 1, "empty messages": 1})


def test_every_recommender_turn_after_the_first_with_movies_is_a_sample(dialogues):
    first, second = dialogues[0]
    samples = protocol_samples(first)
    assert [s.turn for s in samples] == [2, 4]
    assert [(t.movie, t.repeat) for t in samples[0].targets] == [("333", False), ("111", True)]
    assert [(t.movie, t.repeat) for t in samples[1].targets] == [("444", False), ("444", True)]  # twice in a turn
    assert [t.liked_suggestion for t in samples[0].targets] == [True, False]
    # the recommender's opening turn is context, never a sample, even when it names a movie
    (only,) = protocol_samples(second)
    assert only.turn == 2 and only.context_movies == ("111",) and [t.movie for t in only.targets] == ["222"]


def test_the_context_is_every_earlier_turn_of_both_speakers(dialogues):
    sample = protocol_samples(dialogues[0][0])[1]
    assert sample.context_movies == ("111", "222", "333", "111", "333")
    texts = sample.context_texts()
    assert texts[0] == "Hi! What do you like?" and texts[1] == "I loved Toy Story (1995) and Shrek (2001) too"
    assert texts[2] == "Then try Monsters, Inc. (2001) or Toy Story (1995) again, and a movie"
    assert sample.context_texts(seeker_only=True) == [texts[1], texts[3]]
    assert sample.context_texts(last=1) == ["Seen Monsters, Inc. (2001), what else?"]


def test_recall_counts_every_target_and_the_standardised_variant_drops_repeats(dialogues):
    samples = protocol_samples(dialogues[0][0])
    ranked = [["111", "999", "333"], ["555", "444"]]  # the 111 repeat is found at rank 1, 333 at rank 3
    kept = protocol_hits(samples, ranked, ks=(1, 2, 3))
    assert kept == [[False, False, True], [True, True, True], [False, True, True], [False, True, True]]
    removed = protocol_hits(samples, ranked, ks=(1, 2, 3), repeats=False)
    assert removed == [[False, False, True], [False, True, True]]
    assert protocol_hits(samples, ranked, ks=(3,), catalogue={"111"}) == [[False], [True], [False], [False]]


def test_written_out_mentions():
    assert written_out("try @1 or @2", {"1": "Heat  (1995)"}) == "try Heat (1995) or a movie"


def _catalogue_files(tmp_path: Path) -> Path:
    (tmp_path / "redial").mkdir()
    (tmp_path / "ml-25m-keywords").mkdir()
    (tmp_path / "redial" / "movies_with_mentions.csv").write_text(
        "movieId,movieName,nbMentions\n"
        "1,The Matrix (1999),99\n"  # exact
        "2,Heat (1996),5\n"  # one year off
        "3,Seven ,3\n"  # no year: the bare title, through the a.k.a. form
        "4,Sabrina,1\n"  # no year and two films: the most rated
        "5,Unknown Film (2018),1\n"  # not in MovieLens
        "6,,1\n",  # no name
        encoding="utf-8",
    )
    (tmp_path / "ml-25m-keywords" / "movies_all.csv").write_text(
        "movieId,title,genres,keyword\n"
        '2571,"Matrix, The (1999)",Action|Sci-Fi,hackers|simulation\n'
        "6,Heat (1995),Action|Crime,heist\n"
        "47,Seven (a.k.a. Se7en) (1995),Mystery|Thriller,\n"
        "915,Sabrina (1954),Comedy|Romance,\n"
        "7,Sabrina (1995),Comedy|Romance,remake\n",
        encoding="utf-8",
    )
    return tmp_path


def test_the_redial_catalogue_maps_titles_and_years_to_movielens(tmp_path):
    data = _catalogue_files(tmp_path)
    films = load_movies_all(data)
    assert films["2571"] == Item("2571", "Matrix, The", 1999, ("Action", "Sci-Fi"), ("hackers", "simulation"))
    cat = load_redial_catalogue(data, films, popularity={"7": 50, "915": 10})
    assert cat.to_movielens == {"1": "2571", "2": "6", "3": "47", "4": "7"}
    assert cat.items["1"].genres == ("Action", "Sci-Fi") and cat.items["1"].title == "The Matrix"
    assert cat.items["2"].year == 1996 and cat.items["5"] == Item("5", "Unknown Film", 2018)
    assert "6" not in cat.items and cat.counts["rows without id or name"] == 1
    assert cat.counts["ambiguous (most popular chosen)"] == 1 and cat.counts["mapped to MovieLens"] == 4
    assert cat.from_movielens()["2571"] == "1"


def test_title_index_finds_films_outside_the_rated_catalogue(tmp_path):
    index = title_index(load_movies_all(_catalogue_files(tmp_path)))
    assert index.find("The Matrix (1999)") == "2571" and index.find("matrix") == "2571"
    assert index.find("Se7en (1995)") == "47"
    assert index.find("Heat (1980)") is None and index.find("Nothing Like It") is None
    assert index.find("Sabrina (1954)") == "915"
    assert index.counts["not found (title known, other year)"] == 1
