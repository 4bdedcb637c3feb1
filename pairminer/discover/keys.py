"""Artist and title keys of a partition's column with Arrow kernels, Python (`text`) only where needed.

Titles/artists that are plain ASCII fold with Arrow alone; one plain trailing decoration is modelled once per
distinct decoration; the rest go through `text.original_parts` / `text.artist_key`. Every path gives the keys
`text` gives (tests check this). Used by the blocking pass (`blocks.py`) and the near-miss scan (`near.py`).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .text import ARTIST_ASCII_SYMBOLS, AUDIO_EXTENSIONS, MAX_TITLE_CHARS, artist_key, original_parts


# Titles/artists that are ASCII and carry no decoration or separator fold with Arrow kernels alone;
# the rest go through the Python normal form. Both paths give identical keys.
# A title that is a file name ("03 - Song.mp3": text.strip_file_name) also goes to Python.
_FILE_NAME = r"(?i:\.(?:" + "|".join(AUDIO_EXTENSIONS) + r")[\x00-\x20\x7f]*$)"
_TITLE_NEEDS_PY = r"[^\x00-\x7f]|[-~(\[{<]|" + _FILE_NAME + r"|(?i)\b(?:feat|ft|featuring)\b"
# Artists: printable ASCII is handled entirely by Arrow (the credit split included).
_ARTIST_NEEDS_PY = r"[^\x20-\x7e]"
# text._ARTIST_SPLIT_RE with ".*$" after each alternative: removes everything from the first separator.
_ARTIST_SPLIT_TAIL = (r"(?i)\s+(?:feat\.?|ft\.?|featuring|with|x|vs\.?|versus)\s+.*$|\s*[&,;/+].*$"
                      r"|\s*\((?:feat|ft)\.?\s.*$")


def _fold_ascii(col: pa.Array, keep: str = "") -> pa.Array:
    low = pc.utf8_lower(col)
    return pc.utf8_trim(pc.replace_substring_regex(low, r"[^a-z0-9" + re.escape(keep) + r"]+", " "), " ")


def _raw_ascii(col: pa.Array) -> pa.Array:
    """text.raw_key for ASCII strings: lower-cased, control characters and whitespace runs to one space."""
    low = pc.utf8_lower(col)
    return pc.utf8_trim(pc.replace_substring_regex(low, r"[\x00-\x20\x7f]+", " "), " ")


def _or_raw(keys: pa.Array, col: pa.Array) -> pa.Array:
    empty = pc.equal(pc.utf8_length(keys), 0)
    if pc.any(empty).as_py():
        keys = pc.replace_with_mask(keys, empty, _raw_ascii(col.filter(empty)))
    return keys


# One trailing decoration on a plain printable-ASCII head: "Song - Remastered 2009", "Song (Live)",
# "Song [feat. X]". Neither part holds a decoration character ("-~()[]{}<>"), so `text._peel` splits
# exactly there and only once: the base is the Arrow fold of the head (no "feat" word in it) and the
# qualifier keys depend on the decoration alone, so they are modelled once per distinct decoration.
_PLAIN = "[" + "".join(re.escape(chr(c)) for c in range(0x20, 0x7f) if chr(c) not in "-~()[]{}<>") + "]"
_ONE_DECORATION = (rf"^(?P<head>{_PLAIN}*[A-Za-z0-9]{_PLAIN}*?)(?: +- +(?P<dash>{_PLAIN}*[^ \-~()\[\]{{}}<>])"
                   rf"| *[(\[{{<](?P<group>{_PLAIN}*)[)\]}}>])$")
_FEAT_WORD = r"(?i)\b(?:feat|ft|featuring)\b"


def _one_decoration_parts(col: pa.Array) -> tuple[np.ndarray, pa.Array, np.ndarray, np.ndarray]:
    """For the titles of `col` that hold one plain decoration (see `_ONE_DECORATION`): (mask, base as
    Arrow strings, recording keys, edit keys), identical to `text.original_parts` (a test checks this)."""
    m = pc.extract_regex(col, _ONE_DECORATION)
    ok = pc.is_valid(m)
    if len(col):
        ok = pc.and_(ok, pc.less_equal(pc.utf8_length(col), 100_000))  # text._MAX_RAW_CHARS
    head = pc.struct_field(m, "head")
    ok = pc.and_(ok, pc.invert(pc.match_substring_regex(head, _FEAT_WORD))).fill_null(False)
    ok = pc.and_(ok, pc.invert(pc.match_substring_regex(col, _FILE_NAME))).fill_null(False)
    ok_np = ok.to_numpy(zero_copy_only=False)
    if not ok_np.any():
        return ok_np, pa.array([], pa.string()), np.zeros(0, object), np.zeros(0, object)
    head, dash, group = (pc.struct_field(m, f).filter(ok) for f in ("head", "dash", "group"))
    base = pc.utf8_slice_codeunits(_fold_ascii(head), 0, MAX_TITLE_CHARS)
    is_dash = pc.greater(pc.utf8_length(dash), 0).fill_null(False)
    deco = pc.if_else(is_dash, pc.binary_join_element_wise("x - ", dash, ""),
                      pc.binary_join_element_wise("x (", group, ")", ""))
    enc = pc.dictionary_encode(deco)
    parts = [original_parts(d) for d in enc.dictionary.to_pylist()]
    ind = enc.indices.to_numpy(zero_copy_only=False)
    rec = np.array([p.recording_key for p in parts], dtype=object)[ind]
    edit = np.array([p.edit_key for p in parts], dtype=object)[ind]
    return ok_np, base, rec, edit


def _title_parts_hybrid(col: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(base as Arrow strings, recording keys, edit keys as object ndarrays) of original titles: Arrow
    kernels for plain ASCII titles (no decoration possible: base = fold, else the raw characters) and
    for one plain trailing decoration, `text.original_parts` once per distinct remaining title. All
    paths give identical keys (a test checks this). Each title is folded by one path only."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    needs_py = pc.match_substring_regex(col, _TITLE_NEEDS_PY).fill_null(False)
    rec = np.full(len(col), "", dtype=object)
    edit = np.full(len(col), "", dtype=object)
    if not pc.any(needs_py).as_py():
        return pc.utf8_slice_codeunits(_or_raw(_fold_ascii(col), col), 0, MAX_TITLE_CHARS), rec, edit  # ASCII: chars
    needs_np = needs_py.to_numpy(zero_copy_only=False)
    plain_at, at = np.flatnonzero(~needs_np), np.flatnonzero(needs_np)
    plain = col.take(pa.array(plain_at, pa.int64()))
    pieces, where = [pc.utf8_slice_codeunits(_or_raw(_fold_ascii(plain), plain), 0, MAX_TITLE_CHARS)], [plain_at]
    ok, fast_base, fast_rec, fast_edit = _one_decoration_parts(col.take(pa.array(at, pa.int64())))
    if ok.any():
        fast_at = at[ok]
        pieces.append(fast_base)
        where.append(fast_at)
        rec[fast_at] = fast_rec
        edit[fast_at] = fast_edit
        at = at[~ok]
    if len(at):
        sub = pc.dictionary_encode(col.take(pa.array(at, pa.int64())))
        parts = [original_parts(v) for v in sub.dictionary.to_pylist()]
        ind = sub.indices.to_numpy(zero_copy_only=False)
        pieces.append(pa.array(np.array([p.base for p in parts], dtype=object)[ind], pa.string()))
        where.append(at)
        rec[at] = np.array([p.recording_key for p in parts], dtype=object)[ind]
        edit[at] = np.array([p.edit_key for p in parts], dtype=object)[ind]
    # the pieces in path order, put back in the order of `col`
    order = np.empty(len(col), dtype=np.int64)
    order[np.concatenate(where)] = np.arange(len(col))
    base = pa.concat_arrays([x.cast(pa.string()) for x in pieces]).take(pa.array(order, pa.int64()))
    return base, rec, edit


def _keys_hybrid(col: pa.Array, needs_py_pattern: str, py_fn, post=None) -> pa.Array:
    """Base titles as an Arrow string array (kept for callers of the former API: `match_key` only)."""
    return _title_parts_hybrid(col)[0]


def _artist_key_arrow(col: pa.Array) -> pa.Array:
    """text.artist_key for printable-ASCII credits, with Arrow kernels only."""
    keep = ARTIST_ASCII_SYMBOLS
    primary = _fold_ascii(pc.replace_substring_regex(col, _ARTIST_SPLIT_TAIL, "", max_replacements=1), keep)
    key = pc.replace_substring_regex(primary, r"^the ", "")
    empty = pc.equal(pc.utf8_length(key), 0)
    if pc.any(empty).as_py():  # artist_key falls back to the whole credit, then to its raw characters
        whole = col.filter(empty)
        key = pc.replace_with_mask(key, empty, _or_raw(_fold_ascii(whole, keep), whole))
    return key


def _artist_key_values(col: pa.Array) -> pa.Array:
    """artist_key of each value: Arrow for printable ASCII, Python (text.artist_key) for the rest."""
    keys = _artist_key_arrow(col)
    needs_py = pc.match_substring_regex(col, _ARTIST_NEEDS_PY).fill_null(False)
    if pc.any(needs_py).as_py():
        py = [artist_key(v) for v in col.filter(needs_py).to_pylist()]
        keys = pc.replace_with_mask(keys, needs_py, pa.array(py, pa.string()))
    return keys


def artist_row_keys(part: pa.Table) -> tuple[pa.Array, np.ndarray]:
    """The artist key of every row as (keys, index per row into keys). Each distinct credit is keyed once;
    a row with an `artist_id` keys as `id:<artist_id>`. The same key may appear more than once in `keys`."""
    enc = pc.dictionary_encode(part.column("artist").combine_chunks())
    keys = _artist_key_values(enc.dictionary)
    idx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    if "artist_id" in part.column_names:
        ids = pc.utf8_trim_whitespace(part.column("artist_id").combine_chunks())
        has_id = pc.and_(pc.is_valid(ids), pc.greater(pc.utf8_length(ids), 0)).fill_null(False)
        if pc.any(has_id).as_py():
            id_keys = pc.binary_join_element_wise("id:", ids.filter(has_id), "")
            at = np.flatnonzero(has_id.to_numpy(zero_copy_only=False))
            idx[at] = len(keys) + np.arange(len(at), dtype=np.int32)
            keys = pa.concat_arrays([keys.cast(pa.string()), id_keys.cast(pa.string())])
    return keys, idx


def _artist_codes(part: pa.Table, vkeys: np.ndarray, row_keys: tuple[pa.Array, np.ndarray] | None = None
                  ) -> np.ndarray:
    """Per row, the index of its artist key in `vkeys`, or -1 (`row_keys`: artist_row_keys(part), if known)."""
    keys, idx = row_keys if row_keys is not None else artist_row_keys(part)
    dict_codes = pc.index_in(keys, value_set=pa.array(vkeys, pa.string()))
    dict_codes = dict_codes.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return dict_codes[idx]
