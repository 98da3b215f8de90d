"""Data layer: MovieLens loaders, keyword enrichment, the LlamaRec preprocessing and split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmrec.data import load_dataset, preprocess
from llmrec.data.dataset import Dataset, Interactions
from llmrec.data.item_text import item_text
from llmrec.data.movielens import load_atomic, load_latest, load_ml1m, load_ml100k_classic, split_title
from llmrec.errors import DataError
from llmrec.types import Item


def _dataset(rows: list[tuple[str, str, int]], items: list[str] | None = None) -> Dataset:
    ids = items or sorted({r[1] for r in rows})
    catalog = {i: Item(i, f"Movie {i}") for i in ids}
    users, items_, stamps = zip(*rows) if rows else ((), (), ())
    inter = Interactions.from_columns(users, items_, [4.0] * len(rows), stamps)
    return Dataset("toy", catalog, inter)


def test_split_title_handles_years_and_placeholders():
    assert split_title("Toy Story (1995)") == ("Toy Story", 1995)
    assert split_title("Babylon 5") == ("Babylon 5", None)
    assert split_title("Fawlty Towers (1975-1979)") == ("Fawlty Towers", 1975)
    assert split_title("unknown") == ("", None)
    assert split_title("unkonwn") == ("", None)


def test_k_core_is_iterative():
    # Item "z" has 2 interactions; removing it leaves user "c" with 2 -> user "c" must go too,
    # which leaves item "y" with 2 -> gone as well. A single pass would keep them.
    rows = [(u, i, t) for t, (u, i) in enumerate(
        [("a", "x"), ("b", "x"), ("c", "x"), ("a", "w"), ("b", "w"), ("c", "w"),
         ("a", "v"), ("b", "v"), ("c", "v"), ("c", "z"), ("a", "z"), ("c", "y"), ("b", "y")]
    )]  # fmt: skip
    seq = preprocess(_dataset(rows), min_count=3)
    assert seq.user_ids == ("a", "b", "c")
    assert seq.item_ids == ("v", "w", "x")
    assert seq.n_interactions == 9


def test_order_ties_broken_by_dense_item_in_natural_id_order():
    # Same timestamp for all of user 1's items: order follows the dense ids, i.e. numeric id order.
    rows = [("1", "10", 5), ("1", "9", 5), ("1", "100", 5), ("1", "2", 1)]
    seq = preprocess(_dataset(rows), min_count=1)
    assert [seq.item_ids[i] for i in seq.sequences[0]] == ["2", "9", "10", "100"]
    assert seq.item_ids[seq.test_target(0)] == "100"
    assert seq.item_ids[seq.valid_target(0)] == "10"
    assert [seq.item_ids[i] for i in seq.train(0)] == ["2", "9"]
    assert [seq.item_ids[i] for i in seq.test_input(0)] == ["2", "9", "10"]


def test_items_without_title_are_dropped():
    ds = _dataset([("1", "1", 1), ("1", "2", 2), ("1", "3", 3), ("1", "4", 4)])
    ds = Dataset("toy", {**ds.items, "4": Item("4", "")}, ds.interactions)
    seq = preprocess(ds, min_count=1)
    assert "4" not in seq.item_ids


def test_too_small_data_set_is_a_clear_error():
    with pytest.raises(DataError, match="too small"):
        preprocess(_dataset([("1", "1", 1), ("1", "2", 2)]), min_count=5)


def test_empty_catalogue_is_refused():
    with pytest.raises(DataError, match="empty catalogue"):
        Dataset("empty", {}, Interactions.from_columns([], [], [], []))


def _write(path: Path, text: str, encoding: str = "utf-8") -> None:
    path.write_text(text, encoding=encoding)


def test_latest_layout_with_tags(tmp_path: Path):
    _write(tmp_path / "movies.csv", 'movieId,title,genres\n1,"American President, The (1995)",Comedy|Drama|Romance\n'
           "2,Ninja 🥷 (2001),(no genres listed)\n")  # fmt: skip
    _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,100\n1,2,3.5,90\n")
    _write(tmp_path / "tags.csv", "userId,movieId,tag,timestamp\n1,1,Politics,1\n2,1,politics,2\n2,1,funny,3\n")
    ds = load_latest(tmp_path)
    assert ds.items["1"] == Item("1", "American President, The", 1995, ("Comedy", "Drama", "Romance"), (),
                                 ("politics", "funny"))  # fmt: skip
    assert ds.items["2"].title == "Ninja 🥷" and ds.items["2"].genres == ()
    rows = list(ds.interactions)
    assert rows[1].item_id == "2" and rows[1].rating == 3.5 and rows[1].timestamp == 90


def test_malformed_rating_row_names_file_and_line(tmp_path: Path):
    _write(tmp_path / "movies.csv", "movieId,title,genres\n1,A (1990),Drama\n")
    _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,100\n1,1,good,101\n")
    with pytest.raises(DataError, match=r"ratings.csv at line 3"):
        load_latest(tmp_path)


def test_missing_folder_and_missing_column(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        load_latest(tmp_path / "nope")
    _write(tmp_path / "movies.csv", "movieId,name\n1,A\n")
    _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(DataError, match="lacks column"):
        load_latest(tmp_path)


def test_ml100k_classic_layout(tmp_path: Path):
    genres = ["0"] * 19
    genres[3] = "1"  # Animation
    _write(tmp_path / "u.item", "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(genres) + "\n"
           "267|unknown||||" + "|".join(["1"] + ["0"] * 18) + "\n"
           "5|Café (1994)|01-Jan-1994||x|" + "|".join(["0"] * 19) + "\n", encoding="latin-1")  # fmt: skip
    _write(tmp_path / "u.data", "1\t1\t5\t874965758\n1\t267\t3\t874965759\n")
    ds = load_ml100k_classic(tmp_path)
    assert ds.items["1"] == Item("1", "Toy Story", 1995, ("Animation",))
    assert "267" not in ds.items  # its title is "unknown": dropped where every loader ends
    assert ds.items["5"].title == "Café"
    assert len(ds.interactions) == 2


def test_atomic_layout(tmp_path: Path):
    _write(tmp_path / "x.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t3\t881250949\n")
    _write(tmp_path / "x.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
           "2\tGoldenEye\t1995\tAction Adventure\n")  # fmt: skip
    ds = load_atomic(tmp_path)
    assert ds.items["2"] == Item("2", "GoldenEye", 1995, ("Action", "Adventure"))
    assert next(iter(ds.interactions)).timestamp == 881250949


def test_ml1m_layout(tmp_path: Path):
    _write(tmp_path / "movies.dat", "1::Toy Story (1995)::Animation|Children's|Comedy\n", encoding="latin-1")
    _write(tmp_path / "ratings.dat", "1::1::5::978300760\n")
    ds = load_ml1m(tmp_path)
    assert ds.items["1"].genres == ("Animation", "Children's", "Comedy")
    assert next(iter(ds.interactions)).rating == 5.0


def test_item_text_drops_empty_lines_and_caps_length():
    text = item_text(Item("1", "Solaris", 1972, ("Drama", "Sci-Fi"), description="x" * 5000))
    assert text.startswith("Solaris (1972)\nGenres: Drama, Sci-Fi\n")
    assert "Keywords" not in text and "Tags" not in text
    assert len(text) < 1100
    assert item_text(Item("2", "No year")) == "No year"
    bad = item_text(Item("3", "Bad\udcff\x00text"))
    assert "\x00" not in bad


def test_real_ml_latest_small_matches_llamarec_counts(shared_data: Path):
    ds = load_dataset("ml-latest-small", data_dir=shared_data)
    seq = preprocess(ds)
    assert seq.stats() == {"users": 610, "items": 3650, "interactions": 90274}
    assert ds.items["1"].keywords[:2] == ("animation", "kids and family")
    assert "pixar" in ds.items["1"].tags
    # Every user's sequence is sorted by time; test/valid are the last two.
    for u in range(seq.n_users):
        assert np.all(np.diff(seq.timestamps[u]) >= 0)


def test_real_ml100k_from_the_recbole_wheel_offline(tmp_path: Path):
    ds = load_dataset("ml-100k", cache_dir=tmp_path)  # no data dir, empty cache: the wheel's files
    assert "recbole" in ds.source
    assert preprocess(ds).stats() == {"users": 943, "items": 1348, "interactions": 99278}


def test_unknown_dataset_and_missing_named_dataset(tmp_path: Path):
    with pytest.raises(DataError, match="unknown data set 'nope'"):
        load_dataset("nope", cache_dir=tmp_path)
    with pytest.raises(DataError, match="ml-1m not found"):
        load_dataset("ml-1m", data_dir=tmp_path, cache_dir=tmp_path)
