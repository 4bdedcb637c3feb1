import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairminer import storage as pio
from pairminer.discover.stage import DiscoverConfig, run_discover
from pairminer.errors import ConfigError
from pairminer.testing import (PAIR_CATEGORIES, TRAP_CATEGORIES, category_report, make_catalog, precision_recall,
                               write_catalog_csv)

HEADER = "track_id,artist,title,duration,genre,audio_path\n"


def _run(path, tmp_path, **cfg):
    res = run_discover(path, tmp_path / "out", DiscoverConfig(**cfg), progress=False)
    return res, pd.read_parquet(res.candidates_path)


def _pairs(df):
    return set(zip(df["mix_track_id"], df["version_track_id"]))


def test_true_pairs_and_traps(write_csv, tmp_path):
    rows = [
        "m1,Daft Punk,Get Lucky,248.0,Dance,a/m1.flac",
        "v1,Daft Punk feat. Pharrell,Get Lucky (Instrumental),248.5,,a/v1.flac",  # pair
        "m2,Adele,Hello - Remastered 2009,295.0,Pop,",
        "v2,ADELE,Hello (Instrumental) - Remastered 2009,294.2,Pop,",               # pair
        "m3,Rosalía,Canción,180.0,Latin,",
        "v3,Rosalia,Canción [Instrumental Version],180.3,Latin,",                  # pair, accents
        "m4,YOASOBI,夜に駆ける,261.0,J-Pop,",
        "v4,YOASOBI,夜に駆ける (Instrumental),261.4,J-Pop,",                        # pair, CJK
        "m5,Band,Far Away,200.0,Rock,",
        "v5,Band,Far Away - Instrumental,201.0,Rock,",                             # trap: delta exactly 1.0
        "v6,Band,Far Away (Instrumental),205.0,Rock,",                             # trap: 5 s apart
        "v7,Other Band,Far Away (Instrumental),200.2,Rock,",                      # trap: other artist
        "v8,Band,Completely Different (Instrumental),200.1,Rock,",                # trap: other song
        "m9,Band,Far Away (Live),200.3,Rock,",                                     # a live original
    ]
    res, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)
    assert _pairs(c) == {("m1", "v1"), ("m2", "v2"), ("m3", "v3"), ("m4", "v4")}
    got = c.set_index("version_track_id")
    assert got.loc["v1", "genre"] == "Dance"
    assert got.loc["v1", "duration_delta_s"] == pytest.approx(0.5)
    assert got.loc["v1", "mix_audio_path"].endswith("a/m1.flac")
    assert got.loc["v1", "mix_audio_path"].startswith(str(tmp_path))  # resolved against the catalog folder
    assert got.loc["v2", "title_score"] == 100.0
    assert res.counts["versions"] == 8 and res.counts["originals"] == 6


def test_funnel_counts_add_up(write_csv, tmp_path):
    rows = ["a,X,Song,200,Pop,", "b,X,Song (Instrumental),200.4,Pop,", "c,X,Bad,abc,Pop,", "a,X,Dup,3,Pop,",
            "d,,NoArtist,3,Pop,"]
    res, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)
    k = res.counts
    assert k["rows_read"] == 5 == k["rows_used"] + k["rows_rejected"]
    assert k["rows_rejected"] == 3
    assert k["originals"] + k["versions"] == k["rows_used"]
    assert k["rejected_by_reason"] == {"bad_duration": 1, "duplicate_track_id": 1, "missing_artist": 1}
    assert k["blocked_pairs"] >= k["within_window"] >= k["above_score"] >= k["kept"] == 1
    rej = pd.read_parquet(res.rejects_path)
    assert sorted(rej["row_number"]) == [4, 5, 6]
    report = json.loads(open(res.report_path).read())
    assert report["counts"] == k
    assert report["hours"]["kept_mix"] == pytest.approx(200 / 3600, abs=1e-4)


def test_best_match_and_ambiguity(write_csv, tmp_path):
    rows = ["a,X,Love Song,200.0,,", "b,X,Love Song,200.6,,", "c,X,Love Songs,200.1,,",
            "v,X,Love Song (Instrumental),200.2,,"]
    res, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)
    assert len(c) == 1
    row = c.iloc[0]
    assert row["mix_track_id"] == "a"  # best score 100, then the smaller |delta| (0.2 < 0.4)
    assert row["n_near_best"] == 2  # a and b both score 100
    assert res.counts["ambiguous"] == 1


def test_kinds_default_to_all_four_and_can_be_narrowed(write_csv, tmp_path):
    rows = ["a,X,Song,200,,", "b,X,Song (Acapella),200.2,,", "c,X,Song (Karaoke Version),200.3,,"]
    _, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path, kinds=("instrumental",))
    assert c.empty
    _, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path, kinds=("acapella", "karaoke"))
    assert sorted(c["version_kind"]) == ["acapella", "karaoke"]
    _, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)  # the default: all four kinds
    assert sorted(c["version_kind"]) == ["acapella", "karaoke"]


@pytest.mark.parametrize("resolution_s", [0.0, 1.0])
def test_generated_catalog_precision_recall_per_category(tmp_path, resolution_s):
    """Seed 2 is held out: calibrate_discover.py tunes on seed 1 only."""
    g = make_catalog(20_000, seed=2, duration_resolution_s=resolution_s, version_rate=0.02)
    path = tmp_path / "cat.csv"
    write_catalog_csv(g.catalog, str(path))
    res, c = _run(str(path), tmp_path, partition_rows=4000)
    p, r = precision_recall(c, g.truth)
    assert p >= 0.995 and r >= 0.99, (p, r)
    rep = category_report(c, g).set_index("category")
    assert set(PAIR_CATEGORIES) <= set(rep.index) and set(TRAP_CATEGORIES) <= set(rep.index)
    pairs = rep[rep["kind"] == "pair"]
    assert (pairs["recall"] >= 0.99).all(), pairs[pairs["recall"] < 0.99]
    assert (rep["false_pairs"] == 0).all(), rep[rep["false_pairs"] > 0]
    assert res.counts["duration_resolution_s"] == resolution_s
    assert res.counts["versions"] == res.counts["kept"] + res.counts["near_misses"]


def test_various_artists_block_is_bounded(tmp_path):
    """Blocking by artist x duration bucket: a huge block costs versions x neighbours, not size^2."""
    g = make_catalog(20_000, seed=5, va_tracks=8000)
    path = tmp_path / "cat.csv"
    write_catalog_csv(g.catalog, str(path))
    res, _ = _run(str(path), tmp_path)
    n_va = (g.catalog["artist"] == "Various Artists").sum()
    assert n_va >= 7000
    # An artist-only join would compare every VA version with all ~8000 VA originals.
    va_versions = g.catalog["title"].str.contains("Instrumental")[g.catalog["artist"] == "Various Artists"].sum()
    assert res.counts["blocked_pairs"] < 0.25 * max(va_versions, 1) * n_va


def test_deterministic_output(tmp_path):
    g = make_catalog(5000, seed=11)
    path = tmp_path / "cat.csv"
    write_catalog_csv(g.catalog, str(path))
    a = run_discover(str(path), tmp_path / "a", DiscoverConfig(partition_rows=1000), progress=False)
    b = run_discover(str(path), tmp_path / "b", DiscoverConfig(partition_rows=3000), progress=False,
                     scheduler="synchronous")
    ta, tb = pq.read_table(a.candidates_path), pq.read_table(b.candidates_path)
    assert ta.num_rows > 0 and ta.equals(tb)


def test_outputs_match_their_schemas(write_csv, tmp_path):
    res, _ = _run(write_csv(HEADER + "a,X,Song,200,Pop,\nb,X,Song (Instrumental),200.4,Pop,\nc,X,x,-1,,\n"),
                  tmp_path)
    for path, name in [(res.candidates_path, "candidates"), (res.rejects_path, "rejects")]:
        t = pio.read_table(path, schema=name)
        assert t.schema.metadata[b"pairminer.schema"] == name.encode()
    from pairminer.schemas import json_schema

    json_schema("discover-report").validate(json.loads(open(res.report_path).read()))


def test_empty_result_still_writes_valid_outputs(write_csv, tmp_path):
    res, c = _run(write_csv(HEADER + "a,X,Song,200,Pop,\n"), tmp_path)
    assert c.empty and list(c.columns)[:3] == ["pair_id", "mix_track_id", "version_track_id"]
    assert res.counts["kept"] == 0


def test_audio_root_refuses_escapes(write_csv, tmp_path):
    root = tmp_path / "audio"
    root.mkdir()
    rows = ["a,X,Song,200,Pop,../../etc/passwd", "b,X,Song (Instrumental),200.4,Pop,inside/b.flac"]
    res, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path, audio_root=str(root))
    assert pd.isna(c.iloc[0]["mix_audio_path"])
    assert c.iloc[0]["version_audio_path"] == str(root / "inside" / "b.flac")
    assert res.counts["audio_paths_refused"] == 1


@pytest.mark.parametrize("bad", [{"max_delta": 0}, {"min_score": 120}, {"kinds": ("nope",)}, {"scorer": "x"}])
def test_bad_config(bad):
    with pytest.raises(ConfigError):
        DiscoverConfig.from_dict(bad)


def test_unknown_config_key_names_the_nearest():
    with pytest.raises(ConfigError, match="did you mean 'min_score'"):
        DiscoverConfig.from_dict({"min_scor": 80})


def test_config_yaml_round_trip():
    cfg = DiscoverConfig(kinds=("instrumental", "acapella"), min_score=85.0, keywords={"instrumental": ["instru"]})
    assert DiscoverConfig.from_yaml(cfg.to_yaml()) == cfg


@pytest.mark.slow
def test_local_cluster_matches_default_scheduler(tmp_path):
    distributed = pytest.importorskip("distributed")
    g = make_catalog(6000, seed=2)
    path = tmp_path / "cat.csv"
    write_catalog_csv(g.catalog, str(path))
    cfg = DiscoverConfig(partition_rows=1500, kinds=("instrumental", "acapella"))
    a = run_discover(str(path), tmp_path / "local", cfg, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        b = run_discover(str(path), tmp_path / "cluster", cfg, progress=False, scheduler=lc.scheduler_address)
    ta, tb = pq.read_table(a.candidates_path), pq.read_table(b.candidates_path)
    assert ta.num_rows > 0 and ta.equals(tb)
    assert a.counts == b.counts


def test_vectorised_keys_equal_the_python_definitions():
    """Arrow computes most keys; text.artist_key / text.match_key define them. They must agree."""
    import random

    import pyarrow as pa

    from pairminer.discover.stage import _TITLE_NEEDS_PY, _artist_key_values, _keys_hybrid
    from pairminer.discover.text import artist_key, match_key

    rng = random.Random(0)
    artists = ["The Beatles", "The", "the the", "A x B", "Ax B", "Tyler, The Creator", "AC/DC", "& Friends", "&",
               "A feat.B", "A (feat. B)", "A(feat. B)", "A vs. B", "A + B", "X\tfeat. Y", "A\x01B", "Beyoncé",
               "feat. X", "Bob x", "x Bob", "A; B", "THE WHO", "(feat. X) A", "  The  Who ", "", "=LOVE", "-", "!!!",
               "$", "& &", "Ke$ha", "<3", "the", " - "]
    artists += ["".join(rng.choice("abcAB &,;/+()-.x'feat vsthe\t=$!<>|~") for _ in range(rng.randint(0, 15)))
                for _ in range(5000)]
    got = _artist_key_values(pa.array(artists)).to_pylist()
    assert [a for a, k in zip(artists, got) if k != artist_key(a)] == []
    titles = ["Song", "Song - Remastered 2009", "Song (feat. X)", "Feat", "A_b", "x - y", "Café", "Song [Live]", "",
              "$$$", "!!!", " . ", "<3", "Song <Live>"]
    titles += ["".join(rng.choice("abc AB()-[]~ftea.2009Remastered$!<>") for _ in range(rng.randint(0, 20)))
               for _ in range(5000)]
    got = _keys_hybrid(pa.array(titles), _TITLE_NEEDS_PY, match_key).to_pylist()
    assert [t for t, k in zip(titles, got) if k != match_key(t)] == []


@settings(max_examples=500, deadline=None)
@given(st.text(min_size=1, max_size=30), st.text(max_size=4), st.integers(0, 3),
       st.sampled_from([50.0, 80.0, 90.0, 95.0]))
def test_length_bound_never_drops_a_pair_that_reaches_the_score(a, extra, cut, min_score):
    """b is a near variant of a (a suffix added, a few characters cut), so high scores do occur."""
    from rapidfuzz import fuzz

    from pairminer.discover.stage import ratio_can_reach

    b = (a + extra)[cut:]
    reaches = fuzz.ratio(a, b) >= min_score
    allowed = ratio_can_reach(np.array([len(a)]), np.array([len(b)]), min_score)[0]
    assert allowed or not reaches


# ---- issue 12: rounded durations, near misses; issue 17: quadratic blocks, pair ids, symbol artists ----

def _filler(n, artist="Filler", d0=100.0, integral=True):
    return [f"f{i},{artist},Filler Song {i},{int(d0) + i if integral else d0 + i + 0.37}" + ",," for i in range(n)]


def test_whole_second_catalog_widens_the_window(write_csv, tmp_path):
    rows = _filler(150) + ["m,A,Song,200,,", "v,A,Song (Instrumental),201,,",   # true delta hidden by rounding
                           "m2,A,Other,300,,", "v2,A,Other (Instrumental),302,,"]  # 2 s: still too far
    path = write_csv(HEADER + "\n".join(rows) + "\n")
    res, c = _run(path, tmp_path)
    assert _pairs(c) == {("m", "v")}
    assert res.counts["duration_resolution_s"] == 1.0 and res.counts["window_s"] == 2.0
    assert "whole seconds" in res.summary()
    report = json.loads(open(res.report_path).read())
    assert report["counts"]["duration_resolution_s"] == 1.0
    res0, c0 = _run(path, tmp_path, duration_resolution="0")  # the override turns it off
    assert c0.empty and res0.counts["window_s"] == 1.0


def test_exact_durations_keep_the_strict_window(write_csv, tmp_path):
    rows = _filler(150, integral=False) + ["m,A,Song,200,,", "v,A,Song (Instrumental),201,,"]
    res, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)
    assert c.empty and res.counts["duration_resolution_s"] == 0.0


def test_detect_duration_resolution_from_block_counts():
    from pairminer.discover.stage import detect_duration_resolution

    assert detect_duration_resolution([(500, 500), (495, 500)]) == 1.0
    assert detect_duration_resolution([(500, 500), (480, 500)]) == 0.0
    assert detect_duration_resolution([(10, 10)]) == 0.0  # too few rows to tell


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "banana", "61"])
def test_bad_duration_resolution(value):
    with pytest.raises(ConfigError, match="duration_resolution"):
        DiscoverConfig.from_dict({"duration_resolution": value})


def test_near_misses_say_why(write_csv, tmp_path):
    rows = [
        "m1,A,Far Song,200.0,,", "v1,A,Far Song (Instrumental),204.5,,",          # delta over the window
        "m2,A,Blue Moon,300.0,,", "v2,A,Red Sun (Instrumental),300.2,,",          # score below min
        "m3,A,Koi,400.0,,", "v3,A,Koi (Live) [Instrumental],400.1,,",             # recording mismatch
        "m4,A,Good,500.0,,", "v4,A,Good (Instrumental),500.3,,",                  # a pair
        "v5,Nobody,Lonely (Instrumental),100.0,,",                                # no original at all
    ]
    res, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)
    assert _pairs(c) == {("m4", "v4")}
    nm = pio.read_table(res.near_misses_path, schema="near_misses").to_pandas().set_index("version_track_id")
    assert nm.loc["v1", "reason"] == "delta_over_window" and nm.loc["v1", "mix_track_id"] == "m1"
    assert nm.loc["v1", "delta_s"] == pytest.approx(4.5) and nm.loc["v1", "over_window_s"] == pytest.approx(3.5)
    assert nm.loc["v2", "reason"] == "score_below_min" and nm.loc["v2", "score"] < 90
    assert nm.loc["v3", "reason"] == "recording_qualifier_mismatch" and nm.loc["v3", "mix_track_id"] == "m3"
    assert nm.loc["v5", "reason"] == "delta_over_window" and pd.isna(nm.loc["v5", "mix_track_id"])
    k = res.counts
    assert k["versions"] == k["kept"] + k["near_misses"] == 5
    assert k["near_misses_by_reason"] == {"delta_over_window": 2, "score_below_min": 1,
                                          "recording_qualifier_mismatch": 1, "block_capped": 0}
    assert "near_misses.parquet" in res.summary()


def test_pair_ids_never_collide(write_csv, tmp_path):
    rows = ["a__b,A,Song,200,,", "c,A,Song (Instrumental),200.1,,",
            "a,B,Song,200,,", "b__c,B,Song (Instrumental),200.1,,", "x%5Fy,C,Tune,300,,", "x_y,C,Tune (Inst.),300.2,,"]
    _, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)
    assert len(c) == 3 and c["pair_id"].is_unique
    assert set(c["pair_id"]) == {"a%5F%5Fb__c", "a__b%5F%5Fc", "x%255Fy__x%5Fy"}


def test_pair_id_plain_ids_read_as_they_are():
    from pairminer.discover.stage import make_pair_ids

    assert make_pair_ids(pd.Series(["m1", "spotify:track:4u"]), pd.Series(["v1", "7"])).tolist() == \
        ["m1__v1", "spotify:track:4u__7"]


def test_punctuation_and_symbol_artists_do_not_pair_across_artists(write_csv, tmp_path):
    rows = ["a,-,Song,200,,", "b,&,Song (Instrumental),200.1,,", "c,!!!,Tune,300,,", "d,???,Tune (Instrumental),300.1,,",
            "e,ME,Koi,400,,", "f,≠ME,Koi (Instrumental),400.1,,", "g,LOVE,Ai,500,,", "h,=LOVE,Ai (Instrumental),500.2,,",
            "i,=LOVE,Mine,600,,", "j,=LOVE,Mine (Instrumental),600.2,,"]
    _, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)
    assert _pairs(c) == {("i", "j")}


def test_a_quadratic_block_is_capped_and_still_pairs(write_csv, tmp_path):
    """3000 tracks of one artist at one placeholder duration: capped versions use exact titles only."""
    rows = [f"o{i},Big,Track {i},180,," for i in range(3000)]
    rows += [f"v{i},Big,Track {i} (Instrumental),180,," for i in range(0, 3000, 100)]
    res, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path, max_block_comparisons=500)
    assert res.counts["capped_versions"] == 30
    assert _pairs(c) == {(f"o{i}", f"v{i}") for i in range(0, 3000, 100)}
    assert res.counts["blocked_pairs"] <= 30 * 500
    assert "exact title only" in res.summary()


def test_bad_titles_neither_crash_nor_match_everything(write_csv, tmp_path):
    bad = ["\u0301\u0302", "🔥🔥", "\u200b\u200c", "\u202e\u2066x", "x" * 10_000, "(((", "-", "\ufeff\ufeff"]
    rows = [f"o{i},A,{t},200,," for i, t in enumerate(bad)]
    rows += [f"v{i},A,{t} (Instrumental),200.2,," for i, t in enumerate(bad)]
    rows += ["m,A,Real,200.1,,", "w,A,Real (Instrumental),200.3,,"]
    res, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)
    k = res.counts
    assert k["rows_read"] == k["rows_used"] + k["rows_rejected"] == len(rows)
    assert ("m", "w") in _pairs(c)
    # each version pairs with its own original or not at all, never with every original
    assert all(m.replace("o", "v") == v for m, v in _pairs(c) - {("m", "w")})
    assert c["version_track_id"].is_unique


def test_identical_rows_block_is_capped(write_csv, tmp_path):
    """3000 identical titles and durations: each capped version keeps at most 64 exact-title originals."""
    rows = [f"o{i},Same,Same Song,200,," for i in range(3000)]
    rows += [f"v{i},Same,Same Song (Instrumental),200,," for i in range(30)]
    res, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path, max_block_comparisons=500)
    assert res.counts["capped_versions"] == 30 and res.counts["blocked_pairs"] <= 30 * 64
    assert len(c) == 30 and set(c["mix_track_id"]) <= {f"o{i}" for i in range(3000)}
    assert (c["title_score"] == 100).all()


def test_long_titles_pair_and_keys_agree_on_both_paths():
    import pyarrow as pa

    from pairminer.discover.stage import _title_parts_hybrid
    from pairminer.discover.text import VersionDetector, original_parts

    long = "Long " + "x" * 10_000
    base = _title_parts_hybrid(pa.array([long]))[0].to_pylist()[0]
    assert base == original_parts(long).base == VersionDetector().parse(long + " (Instrumental)").base
    assert len(base) == 1000


def test_acapella_window_is_per_version(write_csv, tmp_path):
    rows = ["m,A,Song,200,,", "a,A,Song (Acapella),205,,", "i,A,Song (Instrumental),205.5,,"]
    res, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path, max_delta_acapella=10.0)
    assert _pairs(c) == {("m", "a")}
    nm = pd.read_parquet(res.near_misses_path).set_index("version_track_id")
    assert nm.loc["i", "reason"] == "delta_over_window" and nm.loc["i", "over_window_s"] == pytest.approx(4.5)


def test_title_parts_fast_paths_agree_with_the_title_model():
    """stage._title_parts_hybrid (Arrow for plain titles and for one plain trailing decoration) gives
    exactly text.original_parts: base, recording and edit keys, on tricky and random titles."""
    import random

    import pyarrow as pa

    from pairminer.discover.stage import _one_decoration_parts, _title_parts_hybrid
    from pairminer.discover.text import original_parts

    rng = random.Random(3)
    titles = ["Song", "Song - Remastered 2009", "Song (feat. X)", "Song [feat. X]", "Song (Live)", "Song -Live",
              "Song- Live", "Song - ", " - Live", "$$$ - Live", "Song  -  Radio Edit", "Song (Live) ", "Song (Live]",
              "Song ()", "A - B - C", "Song feat. X - Live", "Song ft X (Live)", "Song - feat. X", "Song <Live>",
              "Song{Live}", "(Live)", "Song (Nova Remix)", "Song - Instrumental", "a_b - _", 'Song (12" Mix)',
              "Song - !!!", "Song\t- Live", "Song - Live\x7f", "Café - Live", "x" * 2000 + " - Live",
              "01 - Song.mp3", "03 - Song (Live).FLAC", "7 Rings.m4a", ".mp3", "Song.mp3 ", "1-03 Song.flac",
              "02. Song - Radio Edit.wav", "Song (Full Chorus Ver.)", "Song -OP ver-", "Song (Vocals)",
              "Song (Game Size)", "Song.mp3\x1c"]
    titles += ["".join(rng.choice("abc AB()-[]{}<>~ftea.2009RemasteredLiveRadioEditMix\"$!_'")
                       for _ in range(rng.randint(0, 25))) for _ in range(4000)]
    heads = ["Song", "Blue sky", "A b c", "Ft", "Jay feat Z", "x", "!!!"]
    decos = ["feat. X", "Live", "Radio Edit", "Remastered 2009", "Nova Remix", "Extended Mix", "Acoustic", "Sped Up",
             "Take 2", "Explicit", "Instrumental", "!!!", "", '12" Mix', "with Y"]
    for _ in range(4000):
        sep = rng.choice([" - ", " (", "(", " [", "  -  ", "-", " - ("])
        titles.append(rng.choice(heads) + sep + rng.choice(decos) + {" (": ")", "(": ")", " [": "]", " - (": ")"}
                      .get(sep, ""))
    base, rec, edit = _title_parts_hybrid(pa.array(titles))
    got = list(zip(base.to_pylist(), rec.tolist(), edit.tolist()))
    want = [(p.base, p.recording_key, p.edit_key) for p in map(original_parts, titles)]
    assert [(t, g, w) for t, g, w in zip(titles, got, want) if g != w] == []
    assert _one_decoration_parts(pa.array(titles))[0].mean() > 0.2  # the fast path is taken


# --- soundtrack catalogs ---

ALBUM_HEADER = "track_id,artist,title,duration,genre,audio_path,album\n"


def test_mix_on_the_versions_own_album_wins(write_csv, tmp_path):
    """The same song on a single, a vocal collection and the soundtrack, the franchise as the artist:
    each version takes the mix of its own album; a karaoke collection's version takes any of them."""
    rows = ["s1,Star Quest,Hoshi,240,,,Hoshi / Kana", "c1,Star Quest,Hoshi,240,,,Star Quest Vocal Collection",
            "o1,Star Quest,Hoshi,240.5,,,Star Quest OST",
            "vs,Star Quest,Hoshi (Off Vocal),240.5,,,Hoshi / Kana",
            "vc,Star Quest,Hoshi (Instrumental),240,,,Star Quest Vocal Collection",
            "vo,Star Quest,Hoshi (Karaoke),240,,,Star Quest OST",
            "vk,Star Quest,Hoshi (Karaoke),240,,,Star Quest Karaoke Collection"]
    _, c = _run(write_csv(ALBUM_HEADER + "\n".join(rows) + "\n"), tmp_path)
    got = dict(zip(c["version_track_id"], c["mix_track_id"]))
    assert (got["vs"], got["vc"], got["vo"]) == ("s1", "c1", "o1")
    assert got["vk"] in {"s1", "c1", "o1"}
    assert (c["n_near_best"] == 3).all()


def test_without_an_album_column_the_same_artist_credit_is_the_release(write_csv, tmp_path):
    """Album as the artist: "Song / Kana" and "Song / Yui" share the key "song"; each off vocal takes its single's mix."""
    rows = ["k,Hoshi / Kana,Hoshi,240,,", "y,Hoshi / Yui,Hoshi,240,,", "r,Hoshi / Rin,Hoshi,240.5,,",
            "vk,Hoshi / Kana,Hoshi (Off Vocal),240.5,,", "vy,Hoshi / Yui,Hoshi (Off Vocal),240,,",
            "vr,Hoshi / Rin,Hoshi (Off Vocal),240,,"]
    _, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)
    assert _pairs(c) == {("k", "vk"), ("y", "vy"), ("r", "vr")}


def test_full_length_mix_preferred_then_delta(write_csv, tmp_path):
    rows = ["tv,Band,Song (TV Size),240,,", "full,Band,Song,240.6,,", "v,Band,Song (Off Vocal),240,,"]
    _, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)
    assert _pairs(c) == {("full", "v")}


def test_named_lengths_and_numbers_must_agree(write_csv, tmp_path):
    rows = ["tv,OST,Song (TV Size),90,,", "g,OST,Song (Game Size) (Off Vocal),90,,",     # game size != TV size
            "f,OST,Song (Full Ver.) (Off Vocal),90.5,,",                                  # full != TV size
            "t2,OST,Song (TV Size) (Off Vocal),90.5,,",                                   # pair
            "s1,OST,Stage Blue 1,200,,", "s2,OST,Stage Blue 2 (Off Vocal),200,,",        # 93 points, other number
            "op,OST,Hoshi -OP ver-,89,,", "vop,OST,Hoshi (TV Size) (Off Vocal),89,,"]     # pair: OP ver is a label
    res, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)
    assert _pairs(c) == {("tv", "t2"), ("op", "vop")}
    nm = pd.read_parquet(res.near_misses_path).set_index("version_track_id")
    assert set(nm.loc[["g", "f", "s2"], "reason"]) == {"recording_qualifier_mismatch"}


def test_file_name_titles_pair(write_csv, tmp_path):
    rows = ["m,OST,01 - Hoshi.mp3,240,,", "v,OST,03 - Hoshi (Original Karaoke).mp3,240,,",
            "m2,OST,夢の約束,200,,", "v2,OST,05. 夢の約束 (ボーカルなし).flac,200.5,,"]
    _, c = _run(write_csv(HEADER + "\n".join(rows) + "\n"), tmp_path)
    assert _pairs(c) == {("m", "v"), ("m2", "v2")}


@pytest.mark.parametrize("seed", [2])
def test_soundtrack_catalog_precision_recall_per_category(tmp_path, seed):
    """Seed 2 is held out (seed 1 calibrates): every soundtrack category at P = R = 1."""
    from pairminer.testing_soundtrack import ST_PAIR_CATEGORIES, ST_TRAP_CATEGORIES, make_soundtrack_catalog

    g = make_soundtrack_catalog(12_000, seed=seed)
    path = tmp_path / "st.csv"
    write_catalog_csv(g.catalog, str(path))
    res, c = _run(str(path), tmp_path, partition_rows=4000)
    assert res.counts["duration_resolution_s"] == 1.0
    rep = category_report(c, g).set_index("category")
    assert set(ST_PAIR_CATEGORIES) <= set(rep.index) and set(ST_TRAP_CATEGORIES) <= set(rep.index)
    pairs = rep[rep["kind"] == "pair"]
    assert (pairs["planted"] >= 20).all(), pairs["planted"]
    assert (pairs["recall"] == 1.0).all(), pairs[pairs["recall"] < 1.0]
    assert (rep["false_pairs"] == 0).all(), rep[rep["false_pairs"] > 0]
    assert precision_recall(c, g.truth) == (1.0, 1.0)
