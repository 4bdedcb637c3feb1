"""Issue 8, bad catalogs: every case through the CLI (one `error:` line or rejects with reasons, never a
traceback) and through run_discover (rows read = rows used + rows rejected, good rows still paired).

tests/discover/test_catalog.py checks the reader's details (reason codes, line numbers); this file checks what
a user of `pairminer discover` sees end to end.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pairminer.cli import main
from pairminer.discover.stage import DiscoverConfig, run_discover
from pairminer.errors import CatalogError
from pairminer.storage import read_json, read_table

HEADER = "track_id,artist,title,duration,genre\n"
# One planted pair (a, b) every "good" catalog below keeps, whatever else it holds.
GOOD = "a,Artist,Song,200,Pop\nb,Artist,Song (Instrumental),200.4,Pop\n"


def _invoke(path, out, *extra):
    return CliRunner().invoke(main, ["discover", str(path), "-o", str(out), "--until", "discover", "-q", *extra])


def _one_error_line(res, code=2) -> str:
    text = res.output + (res.stderr or "")
    assert res.exit_code == code, text
    assert "Traceback" not in text
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# --------------------------------------------------------------------------- files that are no catalog

def _parquet_wrong_types(p):
    pq.write_table(pa.table({"track_id": ["1"], "artist": ["X"], "title": ["A"], "duration": [[1.0, 2.0]]}), p)


def _parquet_missing_column(p):
    pq.write_table(pa.table({"track_id": ["1"], "artist": ["X"], "length": [3.0]}), p)


BAD_FILES = {
    # name: (file name, bytes or writer, pattern the one-line error must match)
    "empty": ("c.csv", b"", r"empty"),
    "only_blank_lines": ("c.csv", b"\r\n\n  \n", r"empty"),
    "header_only": ("c.csv", HEADER.encode(), r"no data rows"),
    "header_only_bom_crlf": ("c.csv", b"\xef\xbb\xbf" + HEADER.replace("\n", "\r\n").encode(), r"no data rows"),
    "wrong_columns": ("c.csv", b"id,name,length\n1,x,3\n", r"lacks required column.*--column"),
    "repeated_header_name": ("c.csv", b"track_id,artist,title,duration,title\n1,x,y,3,z\n", r"repeats column"),
    "binary_garbage": ("c.csv", bytes(range(256)) * 40, r"binary|lacks required|not a CSV"),
    "nul_header": ("c.csv", b"track_id,art\x00ist,title,duration\n1,x,y,3\n", r"binary"),
    "parquet_name_not_parquet": ("c.parquet", b"track_id,artist\n", r"not a Parquet file"),
    "parquet_wrong_types": ("c.parquet", _parquet_wrong_types, r"duration must be numeric"),
    "parquet_missing_column": ("c.parquet", _parquet_missing_column, r"lacks required column.*title"),
    "parquet_truncated": ("c.parquet", None, r"not a readable Parquet file"),
}


def _write_bad(tmp_path, name):
    fname, content, _ = BAD_FILES[name]
    p = tmp_path / fname
    if name == "parquet_truncated":
        pq.write_table(pa.table({"track_id": ["1"] * 100, "artist": ["X"] * 100, "title": ["A"] * 100,
                                 "duration": [3.0] * 100}), p)
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    elif callable(content):
        content(p)
    else:
        p.write_bytes(content)
    return p


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_cli_not_a_catalog_is_one_clean_line(tmp_path, name):
    p = _write_bad(tmp_path, name)
    out = tmp_path / "out"
    line = _one_error_line(_invoke(p, out))
    assert re.search(BAD_FILES[name][2], line), line
    assert str(p.name) in line or "catalog" in line  # the message says which input is wrong
    # nothing that looks like a finished output is left behind
    assert not (out / "candidates.parquet").exists() and not (out / "discover-report.json").exists()


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_library_raises_catalog_error(tmp_path, name):
    p = _write_bad(tmp_path, name)
    with pytest.raises(CatalogError, match=BAD_FILES[name][2]):
        run_discover(p, tmp_path / "out", progress=False)


def test_cli_missing_path_directory_and_unreadable(tmp_path):
    assert "does not exist" in _one_error_line(_invoke(tmp_path / "nope.csv", tmp_path / "o"))
    assert "folder" in _one_error_line(_invoke(tmp_path, tmp_path / "o"))
    assert "does not exist" in _one_error_line(_invoke(tmp_path / "no" / "such" / "dir" / "c.parquet", tmp_path / "o"))


def test_verbose_shows_details_and_still_ends_with_the_error(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes(b"id,name\n1,x\n")
    res = CliRunner().invoke(main, ["discover", str(p), "-o", str(tmp_path / "o"), "--until", "discover", "-v"])
    assert res.exit_code == 2
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert err[-1].startswith("error: ") and "lacks required column" in err[-1]
    assert len(err) > 1 and "Traceback" in res.stderr  # -v: the details, for a bug report


# --------------------------------------------------------------------------- bad rows: rejected, run goes on

BAD_ROWS = {
    # name: (rows appended after GOOD, {reason_code: count})
    "unterminated_quote": ('c,Artist,"Open quote,100,Pop\n', {"unparsable": 1}),
    "wrong_field_counts": ("c,Artist,Too,100,Pop,extra\nd,Artist,Few\n", {"unparsable": 2}),
    "durations": ("c,A,S1,abc,P\nd,A,S2,-1,P\ne,A,S3,0,P\nf,A,S4,nan,P\ng,A,S5,inf,P\nh,A,S6,,P\n"
                  "i,A,S7,-inf,P\nj,A,S8,1e400,P\n", {"bad_duration": 8}),
    "empty_titles_artists": ("c,,Song2,100,P\nd,Artist,,100,P\ne,  ,Song3,100,P\nf,Artist,\t,100,P\n",
                             {"missing_artist": 2, "missing_title": 2}),
    "empty_id": (",Artist,Song2,100,P\n  ,Artist,Song3,100,P\n", {"missing_track_id": 2}),
    "duplicate_ids": ("a,Artist,Other,100,P\nb,Artist,Another,50,P\n a ,Artist,Third,60,P\n",
                      {"duplicate_track_id": 3}),
}


@pytest.mark.parametrize("name", sorted(BAD_ROWS))
def test_bad_rows_rejected_with_reasons_good_rows_paired(tmp_path, name):
    extra, expected = BAD_ROWS[name]
    p = tmp_path / "c.csv"
    p.write_text(HEADER + GOOD + extra, encoding="utf-8")
    out = tmp_path / "out"
    res = _invoke(p, out)
    assert res.exit_code == 0, res.output + res.stderr
    assert "Traceback" not in res.output + res.stderr
    cands = pd.read_parquet(out / "candidates.parquet")
    assert list(zip(cands.mix_track_id, cands.version_track_id)) == [("a", "b")]
    rej = read_table(out / "rejects.parquet", "rejects").to_pandas()
    assert rej["reason_code"].value_counts().to_dict() == expected
    assert rej["reason"].str.len().gt(10).all() and rej["row_number"].gt(3).all()  # GOOD rows are lines 2, 3
    c = read_json(out / "discover-report.json")["counts"]
    assert c["rows_read"] == c["rows_used"] + c["rows_rejected"] == 2 + sum(expected.values())
    assert c["rejected_by_reason"] == expected


def test_every_row_bad_still_writes_empty_candidates(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text(HEADER + "a,X,S,zero,P\nb,,S,1,P\n", encoding="utf-8")
    r = run_discover(p, tmp_path / "o", progress=False)
    assert r.counts["rows_read"] == 2 and r.counts["rows_used"] == 0 and r.counts["rows_rejected"] == 2
    assert len(read_table(r.candidates_path, "candidates")) == 0


# --------------------------------------------------------------------------- odd but valid text: handled

def _pair_ids(out) -> list[tuple[str, str]]:
    c = pd.read_parquet(out / "candidates.parquet")
    return list(zip(c.mix_track_id, c.version_track_id))


def test_bom_and_crlf(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes(b"\xef\xbb\xbf" + (HEADER + GOOD).replace("\n", "\r\n").encode())
    r = run_discover(p, tmp_path / "o", progress=False)
    assert _pair_ids(tmp_path / "o") == [("a", "b")] and r.counts["rows_rejected"] == 0
    c = pd.read_parquet(r.candidates_path)
    assert c["genre"].tolist() == ["Pop"] and c["mix_title"].tolist() == ["Song"]  # no stray \r or BOM


def test_latin1_bytes_in_utf8(tmp_path):
    p = tmp_path / "c.csv"
    data = (HEADER.encode() + "a,Beyoncé,Déjà Vu,200,Pop\n".encode()
            + b"b,Beyonc\xe9,D\xe9j\xe0 Vu (Instrumental),200.2,Pop\n")
    p.write_bytes(data)
    r = run_discover(p, tmp_path / "o", progress=False)
    assert _pair_ids(tmp_path / "o") == [("a", "b")]
    c = pd.read_parquet(r.candidates_path)
    assert c["version_title"].item() == "Déjà Vu (Instrumental)" and c["artist"].item() == "Beyoncé"


def test_long_titles_control_chars_rtl_and_cjk(tmp_path):
    long = "Long " + "x" * 10_000
    rows = [
        ("a", "Artist", long, 300), ("b", "Artist", long + " (Instrumental)", 300.1),
        ("c", "فيروز", "أغنية", 200), ("d", "فيروز", "أغنية (Instrumental)", 200.3),
        ("e", "YOASOBI", "夜に駆ける", 261), ("f", "YOASOBI", "夜に駆ける (Instrumental)", 261.2),
        ("g", "Bell\x07Band", "Tab\tSong\x01", 180), ("h", "Bell\x07Band", "Tab\tSong\x01 (Instrumental)", 180.2),
        ("i", "Mixed עברית", "שיר\u200f (Live)", 100),
    ]
    p = tmp_path / "c.csv"
    p.write_text(HEADER + "".join(f"{i},{a},{t},{d},Pop\n" for i, a, t, d in rows), encoding="utf-8")
    res = _invoke(p, tmp_path / "o")
    assert res.exit_code == 0, res.output + res.stderr
    assert sorted(_pair_ids(tmp_path / "o")) == [("a", "b"), ("c", "d"), ("e", "f"), ("g", "h")]
    c = read_json(tmp_path / "o" / "discover-report.json")["counts"]
    assert c["rows_read"] == c["rows_used"] == 9 and c["rows_rejected"] == 0
    cands = pd.read_parquet(tmp_path / "o" / "candidates.parquet").set_index("mix_track_id")
    assert len(cands.loc["a", "mix_title"]) == len(long)  # kept whole, not truncated


def test_parquet_with_odd_but_usable_types(tmp_path):
    """Integer ids and durations, a large_string column and nulls: read, nulls rejected with reasons."""
    p = tmp_path / "c.parquet"
    pq.write_table(pa.table({
        "track_id": pa.array([1, 2, 3, None], pa.int64()),
        "artist": pa.array(["A", "A", None, "A"], pa.large_string()),
        "title": ["Song", "Song (Instrumental)", "X", "Y"],
        "duration": pa.array([200, 200, 10, 10], pa.int32()),
    }), p)
    r = run_discover(p, tmp_path / "o", progress=False)
    assert _pair_ids(tmp_path / "o") == [("1", "2")]
    rej = pd.read_parquet(r.rejects_path)
    assert rej["reason_code"].tolist() == ["missing_artist", "missing_track_id"]
    assert r.counts["rows_read"] == 4 == r.counts["rows_used"] + r.counts["rows_rejected"]


# --------------------------------------------------------------------------- issue 17: catalogs that misled

def _catalog_bytes(rows=GOOD) -> bytes:
    return (HEADER + rows).encode()


def _gzip(b):
    import gzip

    return gzip.compress(b)


def _zstd(b):
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as f:
        f.write(b)
    return sink.getvalue().to_pybytes()


ENCODED = {
    "gzip": lambda b: _gzip(b),
    "zstd": _zstd,
    "bz2": lambda b: __import__("bz2").compress(b),
    "xz": lambda b: __import__("lzma").compress(b),
    "utf16_bom": lambda b: b.decode().encode("utf-16"),
    "utf16_le_no_bom": lambda b: b.decode().encode("utf-16-le"),
    "utf16_be_no_bom": lambda b: b.decode().encode("utf-16-be"),
    "gzip_utf16": lambda b: _gzip(b.decode().encode("utf-16")),
    "cr_only": lambda b: b.replace(b"\n", b"\r"),
    "excel_trailing_commas": lambda b: b.replace(b"\n", b",,,\r\n"),
}


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_compressed_utf16_cr_and_padded_catalogs_are_read(tmp_path, name):
    """gzip/UTF-16 used to be called "binary data", CR-only got Python's advice, Excel's padding
    "repeats column name ['']": each is read, and the planted pair found."""
    p = tmp_path / "c.csv"
    p.write_bytes(ENCODED[name](_catalog_bytes(GOOD + "c,Other,Tune,100,Rock\n")))
    r = run_discover(p, tmp_path / "o", progress=False)
    assert _pair_ids(tmp_path / "o") == [("a", "b")]
    assert r.counts["rows_read"] == 3 and r.counts["rows_rejected"] == 0
    c = pd.read_parquet(r.candidates_path)
    assert c["genre"].tolist() == ["Pop"] and c["mix_title"].tolist() == ["Song"]
    assert c["mix_row"].tolist() == [2] and c["version_row"].tolist() == [3]


def test_milliseconds_given_as_seconds_warn(tmp_path, caplog):
    p = tmp_path / "c.csv"
    p.write_text(HEADER + "a,A,Song,200000,Pop\nb,A,Song (Instrumental),200400,Pop\nc,B,X,180000,Pop\n")
    with caplog.at_level("WARNING"):
        r = run_discover(p, tmp_path / "o", progress=False)
    assert "--duration-unit ms" in caplog.text
    assert r.counts["rejected_by_reason"] == {"bad_duration": 3}
    rej = pd.read_parquet(r.rejects_path)
    assert rej["reason"].str.contains("longer than a day").all() and rej["reason"].str.contains("--duration-unit ms").all()
    res = _invoke(p, tmp_path / "o2")
    assert res.exit_code == 0 and "--duration-unit ms" in res.stderr
    r = run_discover(p, tmp_path / "o3", DiscoverConfig(duration_unit="ms"), progress=False)
    assert _pair_ids(tmp_path / "o3") == [("a", "b")]


def test_durations_over_a_day_rejected(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text(HEADER + GOOD + "c,A,S1,1e37,P\nd,A,S2,1e308,P\ne,A,S3,86401,P\nf,A,S4,86400,P\n")
    r = run_discover(p, tmp_path / "o", progress=False)
    rej = pd.read_parquet(r.rejects_path)
    assert rej["row_number"].tolist() == [4, 5, 6] and set(rej["reason_code"]) == {"bad_duration"}
    assert r.counts["rows_used"] == 3 and _pair_ids(tmp_path / "o") == [("a", "b")]


def test_field_over_128_kib_is_not_called_unbalanced_quotes(tmp_path):
    big = "y" * 200_000
    p = tmp_path / "c.csv"
    # a bad line elsewhere sends the file down the line-by-line parser, where the 128 KiB limit was
    p.write_text(HEADER + GOOD + f'c,A,"{big}",100,P\nd,A,"open,1,P\n')
    r = run_discover(p, tmp_path / "o", progress=False)
    rej = pd.read_parquet(r.rejects_path)
    assert rej["row_number"].tolist() == [5] and "unbalanced quotes" in rej["reason"].item()
    assert r.counts["rows_used"] == 3


def test_duplicate_parquet_column_is_a_clean_error(tmp_path):
    p = tmp_path / "c.parquet"
    t = pa.Table.from_arrays([pa.array(["1"]), pa.array(["X"]), pa.array(["A"]), pa.array([3.0]), pa.array(["B"])],
                             names=["track_id", "artist", "title", "duration", "title"])
    pq.write_table(t, p)
    line = _one_error_line(_invoke(p, tmp_path / "o"))
    assert "repeats column name" in line and "title" in line


PARQUET_BAD_VALUES = {
    # issue 17 #11: one bad value used to fail the whole catalog
    "large_string_duration": pa.array(["200", "200.4", "oops", "100"], pa.large_string()),
    "int64_sentinel": pa.array([200, 200, 2**63 - 1, 100], pa.int64()),
    "int64_min_sentinel": pa.array([200, 200, -2**63, 100], pa.int64()),
    "dictionary_duration": pa.array(["200", "200.4", "", "100"]).dictionary_encode(),
    "decimal_duration": pa.array([200, 200, 0, 100], pa.decimal128(38, 0)),
}


@pytest.mark.parametrize("name", sorted(PARQUET_BAD_VALUES))
def test_one_bad_parquet_value_rejects_one_row(tmp_path, name):
    p = tmp_path / "c.parquet"
    pq.write_table(pa.table({
        "track_id": ["a", "b", "c", "d"], "artist": ["A", "A", "A", "B"],
        "title": pa.array(["Song", "Song (Instrumental)", "X", "Y"], pa.large_string()),
        "duration": PARQUET_BAD_VALUES[name],
        "genre": pa.array([b"Pop", b"Pop", b"\xff", None], pa.binary()),  # invalid UTF-8: read as cp1252
    }), p)
    r = run_discover(p, tmp_path / "o", progress=False)
    assert _pair_ids(tmp_path / "o") == [("a", "b")]
    rej = pd.read_parquet(r.rejects_path)
    assert rej["row_number"].tolist() == [3] and rej["reason_code"].tolist() == ["bad_duration"]
    assert r.counts["rows_read"] == 4 == r.counts["rows_used"] + r.counts["rows_rejected"]


def test_discover_goes_on_past_a_symlink_loop(tmp_path):
    from pairminer.discover.stage import DiscoverConfig, run_discover

    root = tmp_path / "audio"
    root.mkdir()
    os.symlink(root / "loop", root / "loop")
    (root / "s.flac").write_bytes(b"x")
    (tmp_path / "c.csv").write_text("track_id,artist,title,duration,audio_path\n"
                                    "a,X,Song,200,loop/x.flac\nb,X,Song (Instrumental),200.2,s.flac\n"
                                    "c,Y,Other,100,s.flac\nd,Y,Other (Instrumental),100.1,s.flac\n")
    res = run_discover(tmp_path / "c.csv", tmp_path / "o", DiscoverConfig(audio_root=str(root)),
                       scheduler="synchronous", progress=False)
    assert res.counts["kept"] >= 1


def _parquet_parts(folder: Path, parts: list[dict]):
    import pandas as pd

    folder.mkdir()
    for k, rows in enumerate(parts):
        pd.DataFrame(rows).to_parquet(folder / f"part-{k}.parquet", index=False)


@pytest.mark.parametrize("genre_in", ["first", "second"])
def test_parquet_folder_with_evolving_optional_columns(tmp_path, genre_in):
    """Schema evolution: a `genre` column in only some files gave an unexpected KeyError (when the
    first file had it) or was silently dropped (when a later one had it)."""
    import pandas as pd

    from pairminer.discover.stage import DiscoverConfig, run_discover

    a = {"track_id": ["a", "b"], "artist": ["X", "X"], "title": ["Song", "Song (Instrumental)"],
         "duration": [200.0, 200.2]}
    b = {"track_id": ["c", "d"], "artist": ["Y", "Y"], "title": ["Tune", "Tune (Instrumental)"],
         "duration": [100.0, 100.1]}
    (a if genre_in == "first" else b)["genre"] = ["Rock", "Rock"]
    _parquet_parts(tmp_path / "ds", [a, b])
    run_discover(tmp_path / "ds", tmp_path / "o", DiscoverConfig(), scheduler="synchronous", progress=False)
    c = pd.read_parquet(tmp_path / "o" / "candidates.parquet").set_index("mix_track_id")
    assert set(c.index) == {"a", "c"}
    with_genre = "a" if genre_in == "first" else "c"
    without = "c" if genre_in == "first" else "a"
    assert c.loc[with_genre, "genre"] == "Rock" and pd.isna(c.loc[without, "genre"])


def test_parquet_folder_file_without_a_required_column_is_named(tmp_path):
    from pairminer.discover.stage import DiscoverConfig, run_discover
    from pairminer.errors import CatalogError

    _parquet_parts(tmp_path / "ds", [
        {"track_id": ["a"], "artist": ["X"], "title": ["S"], "duration": [1.0]},
        {"track_id": ["b"], "artist": ["X"], "duration": [1.0]}])
    with pytest.raises(CatalogError, match=r"part-1.parquet lacks required column\(s\) title"):
        run_discover(tmp_path / "ds", tmp_path / "o", DiscoverConfig(), scheduler="synchronous", progress=False)
