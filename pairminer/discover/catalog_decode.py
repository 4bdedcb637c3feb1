"""Decoding a catalog's bytes: compressed (gzip, bz2, zstd, xz) and UTF-16 streams, CR-only line ends,
and text that mixes UTF-8 with cp1252 (read value by value, so one odd value never fails a column)."""

from __future__ import annotations

import pyarrow as pa

from ..errors import CatalogError
from .catalog_files import _open, _read_range

_COMPRESSION_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bz2"),
                      (b"\xfd7zXZ\x00", "xz"))


def _detect_stream(head: bytes) -> str:
    for magic, name in _COMPRESSION_MAGIC:
        if head.startswith(magic):
            return name
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(head) >= 8 and head.count(b"\x00") * 3 > len(head) and \
            (head[1::2].count(0) * 4 > len(head) or head[0::2].count(0) * 4 > len(head)):
        return "utf-16"  # UTF-16 without a byte order mark: every other byte is 0 for Latin text
    return ""


def _decode_stream(data: bytes, stream: str) -> bytes:
    """Bytes of a whole stream -> UTF-8 text bytes with \\n line ends."""
    if stream == "xz":
        import lzma

        data = lzma.decompress(data)
    elif stream in ("gzip", "bz2", "zstd"):
        with pa.CompressedInputStream(pa.BufferReader(data), stream) as f:
            data = f.read()
    elif stream == "utf-16":
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = data.decode("utf-16", errors="replace")
        else:
            even_nuls = data[0::2].count(0) > data[1::2].count(0)
            text = data.decode("utf-16-be" if even_nuls else "utf-16-le", errors="replace")
        data = text.encode("utf-8")
    head = data[: 1 << 16]
    if stream != "cr" and stream not in ("", "utf-16") and _detect_stream(head) not in ("", "utf-16"):
        raise CatalogError("catalog is compressed twice; decompress it once and give the CSV")
    if stream in ("utf-16", "gzip", "bz2", "zstd", "xz") and _detect_stream(head) == "utf-16":
        return _decode_stream(data, "utf-16")
    if b"\n" not in data and b"\r" in data:
        data = data.replace(b"\r", b"\n")
    return data


def _stream_head(path: str, stream: str) -> bytes:
    """The first 64 KiB of the decoded text of a one-stream CSV."""
    if stream == "utf-16":
        return _decode_stream(_read_range(path, 0, 1 << 17), "utf-16")[: 1 << 16]
    if stream == "cr":
        return _read_range(path, 0, 1 << 16).replace(b"\r", b"\n")
    with _open(path) as raw:
        if stream == "xz":
            import lzma

            with lzma.open(raw) as f:
                head = f.read(1 << 16)
        else:
            try:
                with pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), stream) as f:
                    head = f.read(1 << 16)
            except (pa.ArrowInvalid, OSError) as exc:
                raise CatalogError(f"catalog {path} looks {stream}-compressed but cannot be decompressed: "
                                   f"{exc}") from exc
    if _detect_stream(head) == "utf-16":
        head = _decode_stream(head, "utf-16")
    elif b"\n" not in head and b"\r" in head:
        head = head.replace(b"\r", b"\n")
    return head


def _to_utf8(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """Any column -> string. Invalid UTF-8 bytes decode as cp1252; values that cannot be cast become text
    one by one, so one odd value never fails the column."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_string(col.type):
        return col
    try:
        return col.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values = []
    for v in col.to_pylist():
        if v is None:
            values.append(None)
        elif isinstance(v, (bytes, bytearray)):
            values.append(_decode_mixed(bytes(v)))
        else:
            values.append(str(v))
    return pa.chunked_array([pa.array(values, pa.string())])


def _unescape(text: str) -> str:
    """A str decoded with surrogateescape -> valid text (invalid UTF-8 bytes read as cp1252)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _decode_mixed(text.encode("utf-8", errors="surrogateescape"))


def _decode_mixed(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("cp1252", errors="replace")
