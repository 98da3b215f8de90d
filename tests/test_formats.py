"""Loaders for the generic, Amazon and Netflix formats on small files written by each test."""

from __future__ import annotations

import calendar
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from llmrec.data.amazon import find_amazon_files, is_amazon_folder, load_amazon, load_amazon_folder
from llmrec.data.dataset import Dataset
from llmrec.data.generic import is_generic_folder, load_generic, write_generic
from llmrec.data.netflix import is_netflix_folder, load_netflix
from llmrec.errors import DataError
from llmrec.types import Interaction, Item


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def _jsonl(path: Path, rows: list[dict], gz: bool = False) -> Path:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if gz:
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
        return path
    return _write(path, text)


def _utc(day: str) -> int:
    year, month, date = (int(p) for p in day.split("-"))
    return calendar.timegm((year, month, date, 0, 0, 0))


# ---------------------------------------------------------------------------------------------- generic

ITEMS_CSV = (
    "\ufeffitem_id,title,year,genres,keywords,tags,description\n"
    'm1,"Toy Story, the film",1995,Animation|Comedy,toys| friendship ,,"A cowboy doll, jealous."\n'
    "m2,Amélie 🎈,2001,Romance,,paris,\n"
    "m3,שלום עולם,,Drama,,,טקסט\n"
    "m4,   ,,,,,\n"
)
INTER_CSV = (
    "user_id,item_id,rating,timestamp\n"
    "u1,m1,4.5,978300760\n"
    "u1,m2,,2001-01-01\n"
    "u2,m3,3,2001-01-01T10:00:00Z\n"
    "u2,m1,5.0,2001-01-01T12:00:00+02:00\n"
)


def _generic_csv(folder: Path, items: str = ITEMS_CSV, inter: str = INTER_CSV) -> Path:
    _write(folder / "items.csv", items)
    _write(folder / "interactions.csv", inter)
    return folder


def test_generic_csv_with_bom_emoji_rtl(tmp_path: Path) -> None:
    data = load_generic(_generic_csv(tmp_path / "mine"))
    assert data.name == "mine" and data.source == str(tmp_path / "mine")
    assert data.items["m1"] == Item(
        "m1",
        "Toy Story, the film",
        1995,
        ("Animation", "Comedy"),
        ("toys", "friendship"),
        (),
        "A cowboy doll, jealous.",
    )
    assert data.items["m2"].title == "Amélie 🎈" and data.items["m2"].tags == ("paris",)
    assert data.items["m3"] == Item("m3", "שלום עולם", None, ("Drama",), description="טקסט")
    assert "m4" not in data.items  # no title: dropped where every loader ends
    rows = list(data.interactions)
    assert rows[0] == Interaction("u1", "m1", 4.5, 978300760)
    assert rows[1] == Interaction("u1", "m2", None, _utc("2001-01-01"))
    assert rows[2].timestamp == _utc("2001-01-01") + 10 * 3600
    assert rows[3].timestamp == _utc("2001-01-01") + 10 * 3600
    assert is_generic_folder(tmp_path / "mine") and not is_generic_folder(tmp_path)


def test_generic_jsonl_lists_and_row_order(tmp_path: Path) -> None:
    _jsonl(
        tmp_path / "items.jsonl",
        [
            {"item_id": 1, "title": "Dune", "year": "1965", "genres": ["SF", " Epic "], "keywords": "sand|spice"},
            {"item_id": "2", "title": None, "year": None, "description": "🚀 مرحبا"},
        ],
    )
    _write(
        tmp_path / "interactions.jsonl",
        '{"user_id": "a", "item_id": 2}\n\n{"user_id": 7, "item_id": "1", "rating": "2"}\n',
    )
    data = load_generic(tmp_path, "books")
    assert data.name == "books"
    assert data.items["1"] == Item("1", "Dune", 1965, ("SF", "Epic"), ("sand", "spice"))
    assert "2" not in data.items  # no title: dropped where every loader ends
    assert list(data.interactions) == [Interaction("a", "2", None, 0), Interaction("7", "1", 2.0, 1)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_generic_round_trip(tmp_path: Path, fmt: str) -> None:
    original = load_generic(_generic_csv(tmp_path / "src"))
    out = write_generic(original, tmp_path / "out", fmt=fmt)
    assert sorted(p.name for p in out.iterdir()) == [f"interactions.{fmt}", f"items.{fmt}"]
    again = load_generic(out, original.name)
    assert dict(again.items) == dict(original.items)
    for column in ("user_ids", "item_ids", "timestamps"):
        assert list(getattr(again.interactions, column)) == list(getattr(original.interactions, column))
    np.testing.assert_array_equal(again.interactions.ratings, original.interactions.ratings)


def test_write_generic_refuses_separator_in_csv_list(tmp_path: Path) -> None:
    data = Dataset("x", {"1": Item("1", "A", genres=("Sci|Fi",))}, load_generic(_generic_csv(tmp_path)).interactions)
    with pytest.raises(DataError, match=r"genres value 'Sci\|Fi'.*export as jsonl"):
        write_generic(data, tmp_path / "out", fmt="csv")
    write_generic(data, tmp_path / "out2", fmt="jsonl")


@pytest.mark.parametrize(
    ("items", "inter", "message"),
    [
        (
            ITEMS_CSV.replace("1995", "19x5"),
            INTER_CSV,
            r"items\.csv, line 2, column 'year': '19x5' is not a whole number",
        ),
        (
            ITEMS_CSV,
            INTER_CSV.replace("4.5", "good"),
            r"interactions\.csv, line 2, column 'rating': 'good' is not a number",
        ),
        (ITEMS_CSV, INTER_CSV.replace("2001-01-01T10", "yesterday"), r"line 4, column 'timestamp': 'yesterday:00:00Z'"),
        (ITEMS_CSV, INTER_CSV.replace("978300760", ""), r"line 2, column 'timestamp': empty"),
        (ITEMS_CSV, INTER_CSV.replace("u2,m3", ",m3"), r"line 4, column 'user_id': empty id"),
        (ITEMS_CSV.replace(",title,", ",name,"), INTER_CSV, r"items\.csv: the header lacks column\(s\) title"),
        (
            ITEMS_CSV.replace("m3,", "m1,"),
            INTER_CSV,
            r"line 4, column 'item_id': duplicate id 'm1' \(first on line 2\)",
        ),
        (ITEMS_CSV + "m5,Extra,2000,,,,,surplus\n", INTER_CSV, r"items\.csv, line 6: 8 fields but the header has 7"),
        (
            ITEMS_CSV,
            INTER_CSV + "u3,m9,1,1\nu3,m8,1,1\nu4,m9,1,1\n",
            r"2 item id\(s\) are not in items\.csv, e\.g\. 'm9' on line 6",
        ),
    ],
)
def test_generic_malformed_rows(tmp_path: Path, items: str, inter: str, message: str) -> None:
    _generic_csv(tmp_path, items, inter)
    with pytest.raises(DataError, match=message) as info:
        load_generic(tmp_path)
    assert "\n" not in str(info.value)


def test_generic_invalid_utf8(tmp_path: Path) -> None:
    _generic_csv(tmp_path)
    (tmp_path / "items.csv").write_bytes(b"item_id,title\nm1,Caf\xe9\n")
    with pytest.raises(DataError, match=r"items\.csv, line 2: not valid UTF-8 \(byte 0xe9.*save the file as UTF-8"):
        load_generic(tmp_path)


def test_generic_jsonl_errors(tmp_path: Path) -> None:
    _write(tmp_path / "items.jsonl", '{"item_id": "1", "title": "A"}\n{"item_id": "2", "title": "B",}\n')
    _write(tmp_path / "interactions.jsonl", '{"user_id": "u", "item_id": "1"}\n')
    with pytest.raises(DataError, match=r"items\.jsonl, line 2: invalid JSON"):
        load_generic(tmp_path)
    _write(tmp_path / "items.jsonl", '{"item_id": "1", "title": "A", "genres": {"a": 1}}\n')
    with pytest.raises(DataError, match=r"line 1, column 'genres': expected a list of strings"):
        load_generic(tmp_path)
    _write(tmp_path / "items.jsonl", '{"item_id": "1", "title": "A"}\n')
    _write(
        tmp_path / "interactions.jsonl",
        '{"user_id": "u", "item_id": "1"}\n{"user_id": "u", "item_id": "1", "timestamp": 5}\n',
    )
    with pytest.raises(DataError, match=r"interactions\.jsonl, line 2, column 'timestamp': present on some rows only"):
        load_generic(tmp_path)
    _write(tmp_path / "items.csv", "item_id,title\n1,A\n")
    with pytest.raises(DataError, match=r"holds both items\.csv and items\.jsonl; keep one"):
        load_generic(tmp_path)


# ---------------------------------------------------------------------------------------------- amazon

REVIEWS_2018 = [
    {"overall": 5.0, "reviewerID": "A1", "asin": "B001", "unixReviewTime": 1252800000, "reviewTime": "09 13, 2009"},
    {"overall": 3.0, "reviewerID": "A2", "asin": "B002", "reviewTime": "01 02, 2010"},
    {"overall": 4.0, "reviewerID": "A1", "asin": "B404", "unixReviewTime": 1252900000},
]
META_2018 = [
    {
        "asin": "B001",
        "title": "Big Dogs &amp; Co <b>Tee</b>",
        "category": ["Clothing, Shoes & Jewelry", "Men", "Shirts"],
        "description": ["Soft cotton.", "Machine wash."],
        "brand": "Big Dogs",
        "feature": ["100% cotton", "x" * 200],
        "date": "September 15, 2016",
        "main_cat": "Amazon Fashion",
    },
    {"asin": "B002", "title": "Mug ☕", "category": [], "main_cat": "Home", "description": "d" * 3000},
    {"asin": "B777", "title": "Never reviewed"},
]


def test_amazon_2018_gz(tmp_path: Path) -> None:
    reviews = _jsonl(tmp_path / "Clothing_5.json.gz", REVIEWS_2018, gz=True)
    meta = _jsonl(tmp_path / "meta_Clothing.json.gz", META_2018, gz=True)
    data = load_amazon(reviews, meta)
    assert data.name == "Clothing_5"
    assert set(data.items) == {"B001", "B002"}
    tee = data.items["B001"]
    assert tee.title == "Big Dogs & Co Tee" and tee.year == 2016
    assert tee.genres == ("Clothing, Shoes & Jewelry", "Men", "Shirts")
    assert tee.keywords == ("Big Dogs", "100% cotton")
    assert tee.description == "Soft cotton. Machine wash."
    mug = data.items["B002"]
    assert mug.genres == ("Home",) and mug.title == "Mug ☕" and len(mug.description) <= 2001
    assert list(data.interactions) == [
        Interaction("A1", "B001", 5.0, 1252800000),
        Interaction("A2", "B002", 3.0, _utc("2010-01-02")),
        Interaction("A1", "B404", 4.0, 1252900000),
    ]  # B404 has no metadata, so no title: not in the catalogue, and preprocessing drops its interactions
    assert "B777" in load_amazon(reviews, meta, keep_unreviewed=True).items


def test_amazon_2023_schema(tmp_path: Path) -> None:
    _jsonl(
        tmp_path / "All_Beauty.jsonl",
        [
            {"rating": 5.0, "asin": "V1", "parent_asin": "P1", "user_id": "U1", "timestamp": 1588687728923},
            {"rating": 2, "asin": "P2", "user_id": "U2", "timestamp": 1588687729000, "text": "meh"},
        ],
    )
    _jsonl(
        tmp_path / "meta_All_Beauty.jsonl",
        [
            {
                "parent_asin": "P1",
                "title": "Lip balm",
                "main_category": "All Beauty",
                "categories": [],
                "features": ["SPF 15"],
                "description": [],
                "store": "Acme",
                "details": {"Date First Available": "March 5, 2019", "Brand": "Other"},
            },
            {"parent_asin": "P2", "title": "Brush", "categories": ["Tools", "Brushes"], "details": {}},
        ],
    )
    assert is_amazon_folder(tmp_path)
    data = load_amazon_folder(tmp_path)
    assert data.name == tmp_path.name
    assert data.items["P1"] == Item("P1", "Lip balm", 2019, ("All Beauty",), ("Acme", "SPF 15"))
    assert data.items["P2"].genres == ("Tools", "Brushes")
    assert list(data.interactions) == [
        Interaction("U1", "P1", 5.0, 1588687728),
        Interaction("U2", "P2", 2.0, 1588687729),
    ]


def test_amazon_2014_loose_meta_and_plain_names(tmp_path: Path) -> None:
    _jsonl(tmp_path / "reviews.jsonl", [{"reviewerID": "A", "asin": "X", "overall": 1, "unixReviewTime": 5}])
    meta = "{'asin': 'X', 'title': \"O'Brien\", 'categories': [['Books', 'Fiction'], ['Books', 'Classics']]}\n"
    _write(tmp_path / "meta.jsonl", meta)
    assert find_amazon_files(tmp_path) == ([tmp_path / "reviews.jsonl"], [tmp_path / "meta.jsonl"])
    item = load_amazon_folder(tmp_path, "books").items["X"]
    assert item == Item("X", "O'Brien", None, ("Books", "Fiction", "Classics"))


def test_amazon_detection(tmp_path: Path) -> None:
    _generic_csv(tmp_path / "generic")
    _jsonl(tmp_path / "generic-jsonl" / "items.jsonl", [{"item_id": 1, "title": "A"}])
    _jsonl(tmp_path / "generic-jsonl" / "interactions.jsonl", [{"user_id": 1, "item_id": 1}])
    assert not is_amazon_folder(tmp_path / "generic") and not is_amazon_folder(tmp_path / "generic-jsonl")
    _jsonl(tmp_path / "no-meta" / "Books_reviews.jsonl.gz", REVIEWS_2018, gz=True)
    assert is_amazon_folder(tmp_path / "no-meta")
    with pytest.raises(DataError, match=r"no Amazon metadata file \(\*meta\*\.jsonl\[\.gz\]\)"):
        load_amazon_folder(tmp_path / "no-meta")
    _jsonl(tmp_path / "no-meta" / "Toys_reviews.jsonl", REVIEWS_2018)
    _jsonl(tmp_path / "no-meta" / "meta.jsonl", META_2018)
    with pytest.raises(DataError, match=r"several Amazon reviews files \(Books_reviews\.jsonl\.gz, Toys_reviews"):
        load_amazon_folder(tmp_path / "no-meta")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"reviewerID": "A", "asin": "X", "overall": 5, ', r"reviews\.jsonl, line 2: invalid JSON"),
        ('{"asin": "X", "overall": 5}', r"line 2: no 'reviewerID' \(2018\) or 'user_id' \(2023\)"),
        ('{"reviewerID": "A", "asin": "X", "overall": "five", "unixReviewTime": 1}', r"line 2: rating 'five'"),
        ('{"reviewerID": "A", "asin": "", "overall": 5, "unixReviewTime": 1}', r"line 2: field 'asin' is missing"),
        ('{"user_id": "U", "asin": "X", "rating": 5, "timestamp": "soon"}', r"line 2: field 'timestamp' = 'soon'"),
        ("[1, 2]", r"line 2: expected a JSON object, got list"),
    ],
)
def test_amazon_malformed(tmp_path: Path, line: str, message: str) -> None:
    first = json.dumps(REVIEWS_2018[0])
    reviews = _write(tmp_path / "reviews.jsonl", f"{first}\n{line}\n")
    meta = _jsonl(tmp_path / "meta.jsonl", META_2018)
    with pytest.raises(DataError, match=message):
        load_amazon(reviews, meta)


# ---------------------------------------------------------------------------------------------- netflix

TITLES = "1,2003,Dinosaur Planet\n2,NULL,Amélie, or the Fabulous Destiny\n3,1997,Character\n"


def test_netflix_training_set_layout(tmp_path: Path) -> None:
    _write(tmp_path / "movie_titles.csv", TITLES, encoding="latin-1")
    _write(tmp_path / "training_set" / "mv_0000001.txt", "1:\n1488844,3,2005-09-06\n822109,5,2005-05-13\n")
    _write(tmp_path / "training_set" / "mv_0000002.txt", "2:\r\n1488844,4,1999-12-31\r\n")
    assert is_netflix_folder(tmp_path) and not is_generic_folder(tmp_path) and not is_amazon_folder(tmp_path)
    data = load_netflix(tmp_path, "netflix")
    assert data.items["2"] == Item("2", "Amélie, or the Fabulous Destiny", None)
    assert data.items["1"].year == 2003 and len(data.items) == 3
    assert list(data.interactions) == [
        Interaction("1488844", "1", 3.0, _utc("2005-09-06")),
        Interaction("822109", "1", 5.0, _utc("2005-05-13")),
        Interaction("1488844", "2", 4.0, _utc("1999-12-31")),
    ]


def test_netflix_kaggle_combined_layout(tmp_path: Path) -> None:
    _write(tmp_path / "movie_titles.csv", TITLES, encoding="latin-1")
    _write(tmp_path / "combined_data_1.txt", "1:\n10,3,2005-09-06\n11,1,2005-09-07\n3:\n10,2,2004-01-01\n")
    _write(tmp_path / "combined_data_2.txt", "2:\n12,5,2003-03-03\n")
    _write(tmp_path / "probe.txt", "1:\n10\n")
    data = load_netflix(tmp_path)
    assert data.name == tmp_path.name
    assert [(i.user_id, i.item_id, i.rating) for i in data.interactions] == [
        ("10", "1", 3.0), ("11", "1", 1.0), ("10", "3", 2.0), ("12", "2", 5.0),
    ]  # fmt: skip
    assert data.interactions.timestamps[-1] == _utc("2003-03-03")


@pytest.mark.parametrize(
    ("titles", "ratings", "message"),
    [
        (TITLES, "1:\n10,3,2005-13-45\n", r"combined_data_1\.txt, line 2: expected CustomerID,Rating,YYYY-MM-DD"),
        (TITLES, "1:\n10,three,2005-01-01\n", r"line 2: expected CustomerID,Rating"),
        (TITLES, "10,3,2005-01-01\n", r"line 1: rating before the first 'MovieID:' line"),
        (TITLES, "9:\n10,3,2005-01-01\n", r"1 movie id\(s\) missing from movie_titles\.csv, e\.g\. 9"),
        (TITLES + "4,19xx,Odd\n", "1:\n10,3,2005-01-01\n", r"movie_titles\.csv, line 4: YearOfRelease '19xx'"),
        (TITLES + "just a title\n", "1:\n10,3,2005-01-01\n", r"line 4: expected MovieID,YearOfRelease,Title"),
    ],
)
def test_netflix_malformed(tmp_path: Path, titles: str, ratings: str, message: str) -> None:
    _write(tmp_path / "movie_titles.csv", titles, encoding="latin-1")
    _write(tmp_path / "combined_data_1.txt", ratings)
    with pytest.raises(DataError, match=message):
        load_netflix(tmp_path)


def test_netflix_detection(tmp_path: Path) -> None:
    assert not is_netflix_folder(tmp_path)
    _write(tmp_path / "movie_titles.csv", TITLES, encoding="latin-1")
    assert not is_netflix_folder(tmp_path)
    with pytest.raises(DataError, match="neither training_set/mv_"):
        load_netflix(tmp_path)
