import math

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pairminer.discover.catalog import read_catalog
from pairminer.errors import CatalogError
from pairminer.schemas import table_schema

HEADER = "track_id,artist,title,duration,genre\n"


def _codes(cat):
    return dict(zip(cat.rejects.column("row_number").to_pylist(), cat.rejects.column("reason_code").to_pylist()))


def test_good_rows_and_counts(write_csv):
    cat = read_catalog(write_csv(HEADER + "a,X,Song,200.5,Pop\nb,Y,Other,100,\n"))
    assert cat.table.num_rows == 2 and cat.rejects.num_rows == 0 and cat.rows_read == 2
    assert cat.table.column("duration_s").to_pylist() == [200.5, 100.0]
    assert cat.table.column("row_number").to_pylist() == [2, 3]


def test_bad_values_are_rejected_with_reasons(write_csv):
    text = HEADER + "\n".join([
        "a,X,Song,200,Pop",        # 2 ok
        "b,X,Song2,abc,Pop",       # 3 non-numeric
        "c,X,Song3,-1,Pop",        # 4 negative
        "d,X,Song4,0,Pop",         # 5 zero
        "e,X,Song5,nan,Pop",       # 6 NaN
        "f,X,Song6,inf,Pop",       # 7 inf
        "g,,Song7,100,Pop",        # 8 empty artist
        "h,X,  ,100,Pop",          # 9 blank title
        "a,X,Dup,100,Pop",         # 10 duplicate id
        ",X,NoId,100,Pop",         # 11 missing id
    ]) + "\n"
    cat = read_catalog(write_csv(text))
    assert cat.table.column("track_id").to_pylist() == ["a"]
    assert _codes(cat) == {3: "bad_duration", 4: "bad_duration", 5: "bad_duration", 6: "bad_duration",
                           7: "bad_duration", 8: "missing_artist", 9: "missing_title", 10: "duplicate_track_id",
                           11: "missing_track_id"}
    assert cat.rows_read == cat.table.num_rows + cat.rejects.num_rows == 10
    assert all(r.startswith("row ") for r in cat.rejects.column("reason").to_pylist())
    table_schema("rejects").conform(cat.rejects)


def test_unparsable_lines_keep_line_numbers(write_csv):
    text = HEADER + 'a,X,Song,200,Pop\nb,X,"unterminated,5,Pop\n\nc,X,Too,1,Pop,extra\nd,X,"Quoted, comma",3,Rap\n'
    cat = read_catalog(write_csv(text))
    assert cat.table.column("track_id").to_pylist() == ["a", "d"]
    assert cat.table.column("row_number").to_pylist() == [2, 6]
    assert cat.table.column("title").to_pylist() == ["Song", "Quoted, comma"]
    assert _codes(cat) == {3: "unparsable", 5: "unparsable"}
    raws = cat.rejects.column("raw").to_pylist()
    assert raws[0].startswith('b,X,"unterminated') and raws[1].endswith("extra")
    assert cat.rows_read == 4


def test_bom_crlf_and_latin1_bytes(write_csv):
    data = b"\xef\xbb\xbf" + HEADER.replace("\n", "\r\n").encode() + "a,Café,Déjà,3,Pop\r\n".encode() + \
        b"b,Caf\xe9,Latin1,4,Pop\r\n"
    cat = read_catalog(write_csv(data))
    assert cat.table.column_names[0] == "track_id"
    assert cat.table.column("artist").to_pylist() == ["Café", "Café"]
    assert cat.table.column("genre").to_pylist() == ["Pop", "Pop"]


def test_column_mapping_and_ms(write_csv):
    path = write_csv("id,performer,track_name,length_ms\n1,X,Song,200500\n")
    cat = read_catalog(path, columns={"track_id": "id", "artist": "performer", "title": "track_name",
                                      "duration": "length_ms"}, duration_unit="ms")
    assert cat.table.column("duration_s").to_pylist() == [200.5]


def test_parquet_input(tmp_path):
    p = tmp_path / "c.parquet"
    pq.write_table(pa.table({"track_id": [1, 2], "artist": ["X", "Y"], "title": ["A", "B"],
                             "duration": [100.0, math.nan]}), p)
    cat = read_catalog(str(p))
    assert cat.fmt == "parquet"
    assert cat.table.column("track_id").to_pylist() == ["1"]
    assert _codes(cat) == {2: "bad_duration"}


def test_parquet_with_wrong_types_is_a_clean_error(tmp_path):
    p = tmp_path / "c.parquet"
    pq.write_table(pa.table({"track_id": ["1"], "artist": ["X"], "title": ["A"], "duration": [[1, 2]]}), p)
    with pytest.raises(CatalogError, match="duration must be numeric"):
        read_catalog(str(p))


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"\n\n", "empty"),
    (HEADER.encode(), "no data rows"),
    (b"name,foo\nx,y\n", "lacks required column"),
    (bytes(range(256)) * 20, "binary|lacks required"),
])
def test_not_a_catalog(write_csv, content, match):
    with pytest.raises(CatalogError, match=match):
        read_catalog(write_csv(content))


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        read_catalog(str(tmp_path / "nope.csv"))
    with pytest.raises(CatalogError, match="folder"):
        read_catalog(str(tmp_path))


def test_unknown_mapping_is_an_error(write_csv):
    with pytest.raises(CatalogError, match="unknown catalog column"):
        read_catalog(write_csv(HEADER + "a,X,S,1,P\n"), columns={"titel": "x"})


def test_long_titles_control_chars_rtl_cjk(write_csv):
    long = "x" * 10_000
    text = HEADER + f"a,X,{long},100,Pop\nb,ﻣﺤﻤﺪ,أغنية,100,Pop\nc,Y,夜に駆ける,100,\nd,Z,Bell\x07Song,100,Pop\n"
    cat = read_catalog(write_csv(text))
    assert cat.table.num_rows == 4
    assert len(cat.table.column("title")[0].as_py()) == 10_000


def test_fsspec_url_input():
    import fsspec

    with fsspec.open("memory://pm-test/catalog.csv", "wb") as f:
        f.write((HEADER + "a,X,Song,200,Pop\nb,X,Bad,-3,Pop\n").encode())
    cat = read_catalog("memory://pm-test/catalog.csv")
    assert cat.table.column("track_id").to_pylist() == ["a"]
    assert cat.rejects.column("reason_code").to_pylist() == ["bad_duration"]
    assert cat.base_dir == "memory://pm-test"
    with pytest.raises(CatalogError, match="does not exist"):
        read_catalog("memory://pm-test/missing.csv")


def test_duplicate_ids_across_chunks_and_lengths():
    """Ids are hashed chunk by chunk; equal ids must hash equal whatever their neighbours' lengths."""
    from pairminer.discover.catalog import _string_hashes

    long = "x" * 300  # over 256 bytes: hashed one by one
    ids = pa.chunked_array([pa.array(["a", "b", "a", long]),
                            pa.array(["c", "b", "a", "", "abcdefghijklmnopq", "abcdefghijklmnopr", "abcdefghijklmnopq",
                                      long, "spotify:track:4uLU6hMCjMI75M1A2tKUQC", "7"])])
    h = _string_hashes(ids)
    values = ids.to_pylist()
    for i in range(len(values)):
        for j in range(len(values)):
            assert (h[i] == h[j]) == (values[i] == values[j]), (values[i], values[j])


@pytest.mark.parametrize("block_bytes", [64, 1 << 20])
def test_duplicates_found_across_blocks(write_csv, block_bytes):
    rows = [f"id{i % 37},A,Song {i},{100 + i}" for i in range(200)]
    cat = read_catalog(write_csv("track_id,artist,title,duration\n" + "\n".join(rows) + "\n"), block_bytes=block_bytes)
    assert cat.table.column("track_id").to_pylist() == [f"id{i}" for i in range(37)]
    assert cat.table.column("row_number").to_pylist() == list(range(2, 39))
    dup = cat.rejects.column("row_number").to_pylist()
    assert dup == list(range(39, 202)) and set(cat.rejects.column("reason_code").to_pylist()) == {"duplicate_track_id"}
    assert cat.rejects.column("track_id").to_pylist()[0] == "id0"


def test_long_and_short_ids_mixed(write_csv):
    """Issue 17 #1: a spotify: URI next to a 1-character id used to raise IndexError."""
    cat = read_catalog(write_csv("track_id,artist,title,duration\n"
                                 "spotify:track:4uLU6hMCjMI75M1A2tKUQC,A,Song,200\n7,A,Song (Instrumental),200\n"))
    assert cat.table.column("track_id").to_pylist() == ["spotify:track:4uLU6hMCjMI75M1A2tKUQC", "7"]
    assert cat.rejects.num_rows == 0


def test_other_delimiters_get_a_hint(write_csv):
    with pytest.raises(CatalogError, match="semicolons, not commas"):
        read_catalog(write_csv("track_id;artist;title;duration\n1;X;S;3\n"))
    with pytest.raises(CatalogError, match="tabs, not commas"):
        read_catalog(write_csv("track_id\tartist\ttitle\tduration\n1\tX\tS\t3\n"))


# --------------------------------------------------------------------------- blocks (issue 15)

def _messy_csv(n=400) -> str:
    lines = []
    for i in range(n):
        if i % 53 == 7:
            lines.append(f'b{i},X,"broken quote {i},100,Pop')  # a broken quote: its line alone is rejected
        elif i % 41 == 3:
            lines.append("")  # blank lines are not records
        elif i % 67 == 5:
            lines.append(f"c{i},X,too,many,fields,here")
        else:
            lines.append(f'r{i},Artist {i % 7},"Title, {i}",{100 + i % 50},Pop')
    return HEADER + "\n".join(lines) + "\n"


@pytest.mark.parametrize("block_bytes", [97, 500, 4096])
def test_blocks_give_the_same_rows_rejects_and_line_numbers(write_csv, block_bytes):
    from pairminer.discover.catalog import plan_catalog

    path = write_csv(_messy_csv())
    whole = read_catalog(path, block_bytes=1 << 30)
    cut = read_catalog(path, block_bytes=block_bytes)
    assert len(plan_catalog(path, block_bytes=block_bytes).blocks) > 3
    assert cut.table.equals(whole.table) and cut.rejects.equals(whole.rejects)
    # exact line numbers: line n of the file holds the row with row_number n
    text = _messy_csv().split("\n")
    for tid, n in zip(cut.table.column("track_id").to_pylist(), cut.table.column("row_number").to_pylist()):
        assert text[n - 1].startswith(tid + ",")
    for n, code in zip(cut.rejects.column("row_number").to_pylist(), cut.rejects.column("reason_code").to_pylist()):
        assert code == "unparsable" and text[n - 1].startswith(("b", "c"))
    assert cut.rows_read == cut.table.num_rows + cut.rejects.num_rows


def test_broken_quote_at_a_block_end_does_not_swallow_the_next_block(write_csv):
    from pairminer.discover.catalog import plan_catalog

    first = HEADER + "a,X,Song,200,Pop\n" + 'b,X,"never closed,100,Pop\n'
    rest = "".join(f"n{i},X,Next {i},100,Pop\n" for i in range(20))
    path = write_csv(first + rest)
    plan = plan_catalog(path, block_bytes=len(first) - len(HEADER) - 5)
    assert plan.blocks[1].start == len(first)  # the cut is at the end of the broken line
    cat = read_catalog(path, block_bytes=len(first) - len(HEADER) - 5)
    assert cat.table.column("track_id").to_pylist() == ["a"] + [f"n{i}" for i in range(20)]
    assert cat.rejects.column("row_number").to_pylist() == [3]


def test_parquet_dataset_folder_glob_and_row_groups(tmp_path):
    import fsspec

    from pairminer.discover.catalog import plan_catalog

    folder = tmp_path / "ds"
    folder.mkdir()
    for k in range(3):
        n = 50
        pq.write_table(pa.table({"track_id": [f"f{k}-{i}" for i in range(n)], "artist": ["A"] * n,
                                 "title": [f"S{i}" for i in range(n)], "duration": [100.0 + i for i in range(n)]}),
                       folder / f"part-{k}.parquet", row_group_size=20)
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-9.parquet.crc").write_text("x")
    plan = plan_catalog(str(folder), partition_rows=1000)
    assert len(plan.blocks) == 3  # row groups of one file merge up to partition_rows
    assert len(plan_catalog(str(folder), partition_rows=20).blocks) == 9  # one per row group
    for target in (str(folder), str(folder / "part-*.parquet")):
        cat = read_catalog(target, partition_rows=20)
        assert cat.rows_read == 150 and cat.table.column("row_number").to_pylist() == list(range(1, 151))
        assert cat.table.column("track_id").to_pylist()[50] == "f1-0"
    fs = fsspec.filesystem("memory")
    for k in range(2):
        with fs.open(f"/pm-ds/cat/p{k}.parquet", "wb") as f:
            pq.write_table(pa.table({"track_id": [f"m{k}"], "artist": ["A"], "title": ["T"], "duration": [1.0]}), f)
    for url in ("memory://pm-ds/cat", "memory://pm-ds/cat/*.parquet"):
        assert read_catalog(url).table.column("track_id").to_pylist() == ["m0", "m1"]


def test_reread_and_held_partitions_give_identical_outputs(tmp_path, monkeypatch):
    """Issue 15: blocks held in memory (small catalog, threads) or read again on the workers (large
    catalog, processes, a cluster) give byte-identical candidates and rejects."""
    from pairminer.discover import catalog as catalog_mod
    from pairminer.discover.stage import DiscoverConfig, run_discover
    from pairminer.testing import make_catalog, write_catalog_csv

    df = make_catalog(5000, seed=5).catalog
    df["duration"] = df["duration"].astype(str)
    df.loc[df.index[30], "duration"] = "-1"
    df.loc[df.index[4500], "track_id"] = df.loc[df.index[20], "track_id"]
    df.loc[df.index[2600], "track_id"] = df.loc[df.index[2599], "track_id"]
    path = tmp_path / "c.csv"
    write_catalog_csv(df, str(path))
    cfg = DiscoverConfig(partition_rows=1000)
    run_discover(path, tmp_path / "held", cfg, progress=False)
    monkeypatch.setattr(catalog_mod, "HOLD_BYTES", 0)
    run_discover(path, tmp_path / "reread", cfg, progress=False)
    run_discover(path, tmp_path / "procs", cfg, scheduler="processes", progress=False)
    for name in ("candidates.parquet", "rejects.parquet"):
        ref = pd.read_parquet(tmp_path / "held" / name)
        for other in ("reread", "procs"):
            pd.testing.assert_frame_equal(ref, pd.read_parquet(tmp_path / other / name))
    rej = pd.read_parquet(tmp_path / "held" / "rejects.parquet")
    assert rej["reason_code"].value_counts().to_dict() == {"duplicate_track_id": 2, "bad_duration": 1}
    assert rej["row_number"].tolist() == [32, 2602, 4502]
    assert len(catalog_mod.plan_catalog(path, partition_rows=1000).blocks) >= 4
