"""Read a TensorFlow V2 checkpoint's ``.index`` file without TensorFlow.

A V2 checkpoint ``<prefix>`` is ``<prefix>.index`` plus data shards
``<prefix>.data-0000S-of-0000N``.  The index is an SSTable in LevelDB's table
format, written by TensorFlow's ``BundleWriter``:

* the file ends with a 48-byte footer: two block handles (offset, size as
  varints: the metaindex block, then the index block), zero padding to 40
  bytes, then the 8-byte magic number ``0xdb4775248b80fb57`` (little-endian);
* a block is a run of prefix-compressed entries (varints ``shared``,
  ``non_shared``, ``value_length``, then the key's new bytes and the value),
  then an array of uint32 restart offsets and their count; every block is
  followed by a 5-byte trailer: the compression type (0: none, which is what
  TensorFlow writes) and the masked CRC32C of the block and that type byte;
* the index block maps separator keys to the handles of the data blocks, whose
  entries are the bundle's: the empty key holds a ``BundleHeaderProto``
  (num_shards, endianness, version), every other key is a tensor name whose
  value is a ``BundleEntryProto`` (dtype, shape, shard_id, offset, size,
  crc32c of the tensor's bytes, slices).

The protocol-buffer wire format is decoded here by hand.  Any damage (short
file, wrong magic, bad block checksum, garbled entry) raises
:class:`~sid_ft.errors.SidFtError` naming the index file.

    index = read_bundle_index("train_dir/model.ckpt-8")
    index.entries["g_conv1_1/weights"].shape      # (3, 3, 4, 32)
    index.data_path(0)                             # '.../model.ckpt-8.data-00000-of-00001'
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import google_crc32c

from sid_ft.errors import SidFtError

__all__ = ["TensorEntry", "BundleIndex", "read_bundle_index", "index_path", "data_path",
           "masked_crc32c", "unmask_crc32c", "DTYPES"]

TABLE_MAGIC = 0xDB4775248B80FB57
"""LevelDB table magic number, the last 8 bytes of an index (little-endian)."""
FOOTER_BYTES = 48  # two block handles padded to 40 bytes, then the magic
TRAILER_BYTES = 5  # compression type byte + masked CRC32C
_MASK_DELTA = 0xA282EAD8

DTYPES: dict[int, tuple[str, int | None]] = {
    1: ("float32", 4), 2: ("float64", 8), 3: ("int32", 4), 4: ("uint8", 1), 5: ("int16", 2),
    6: ("int8", 1), 7: ("string", None), 8: ("complex64", 8), 9: ("int64", 8), 10: ("bool", 1),
    11: ("qint8", 1), 12: ("quint8", 1), 13: ("qint32", 4), 14: ("bfloat16", 2), 15: ("qint16", 2),
    16: ("quint16", 2), 17: ("uint16", 2), 18: ("complex128", 16), 19: ("float16", 2),
    20: ("resource", None), 21: ("variant", None), 22: ("uint32", 4), 23: ("uint64", 8),
}
"""TensorFlow ``DataType`` enum -> (name as ``tf.DType.name``, bytes per element or None if not fixed)."""


def masked_crc32c(data: bytes) -> int:
    """CRC32C of ``data``, masked as LevelDB and TensorFlow store it (rotate right by 15, add a constant)."""
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def unmask_crc32c(masked: int) -> int:
    """Inverse of the mask applied by :func:`masked_crc32c`: the plain CRC32C."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def index_path(prefix: str | os.PathLike) -> str:
    """``<prefix>.index``."""
    return os.fspath(prefix) + ".index"


def data_path(prefix: str | os.PathLike, shard: int, num_shards: int) -> str:
    """``<prefix>.data-0000S-of-0000N``, the data file of shard ``shard`` (0-based)."""
    return f"{os.fspath(prefix)}.data-{shard:05d}-of-{num_shards:05d}"


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a checkpoint as its index describes it.

    dtype: name as ``tf.DType.name`` ('float32', 'int64'...); shape: dims;
    shard_id: which data file; offset, size: where its bytes lie in that file
    (bytes); crc32c: the masked CRC32C of those bytes as stored; sliced: the
    tensor was saved in slices (its bytes live under other keys).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int
    sliced: bool = False

    @property
    def itemsize(self) -> int | None:
        """Bytes per element, None for dtypes without a fixed size (string, variant, resource)."""
        for name, itemsize in DTYPES.values():
            if name == self.dtype:
                return itemsize
        return None

    @property
    def end(self) -> int:
        """First byte after the tensor in its data file."""
        return self.offset + self.size


@dataclass(frozen=True)
class BundleIndex:
    """A checkpoint index: its header and its tensors in file (sorted-name) order.

    prefix: the checkpoint prefix; path: the ``.index`` file; num_shards: data
    files; little_endian: byte order of the data; producer: the TensorFlow
    version number that wrote it.
    """

    prefix: str
    path: str
    num_shards: int
    little_endian: bool
    producer: int
    entries: dict[str, TensorEntry] = field(default_factory=dict)

    def data_path(self, shard: int) -> str:
        """The data file of ``shard``."""
        return data_path(self.prefix, shard, self.num_shards)

    def expected_bytes(self, shard: int) -> int:
        """Length the index implies for ``shard``'s data file: max(offset + size) of its tensors."""
        return max((e.end for e in self.entries.values() if e.shard_id == shard and not e.sliced), default=0)


# --------------------------------------------------------------------------- low-level decoding


def _varint(buf: bytes, pos: int, path: str, what: str) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return (value, next position)."""
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise SidFtError(path, f"garbled index: bad varint in {what}")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _signed64(value: int) -> int:
    """A varint read as a two's-complement int64 (protobuf int64 fields)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def proto_fields(msg: bytes, path: str, what: str) -> list[tuple[int, int | bytes]]:
    """Decode a protobuf message's wire format: ``[(field number, value), ...]`` in order.

    Varint fields give ints, 64-bit and 32-bit fields give little-endian
    unsigned ints, length-delimited fields give bytes.  Groups are refused.
    """
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(msg):
        key, pos = _varint(msg, pos, path, what)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(msg, pos, path, what)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(msg):
                raise SidFtError(path, f"garbled index: {what} ends inside a field")
            value = int.from_bytes(msg[pos:pos + width], "little")
            pos += width
        elif wire == 2:
            length, pos = _varint(msg, pos, path, what)
            if pos + length > len(msg):
                raise SidFtError(path, f"garbled index: {what} ends inside a field")
            value, pos = msg[pos:pos + length], pos + length
        else:
            raise SidFtError(path, f"garbled index: wire type {wire} in {what}")
        fields.append((number, value))
    return fields


# --------------------------------------------------------------------------- table format


def _block_handle(buf: bytes, pos: int, path: str) -> tuple[tuple[int, int], int]:
    """Decode a block handle (offset, size) at ``pos``."""
    offset, pos = _varint(buf, pos, path, "a block handle")
    size, pos = _varint(buf, pos, path, "a block handle")
    return (offset, size), pos


def _footer(data: bytes, path: str) -> tuple[int, int]:
    """The index block's handle, from the footer; SidFtError for a short file or a wrong magic."""
    if len(data) < FOOTER_BYTES:
        raise SidFtError(path, f"truncated or not a checkpoint index: {len(data)} bytes, "
                               f"shorter than the {FOOTER_BYTES}-byte table footer")
    footer = data[-FOOTER_BYTES:]
    if struct.unpack("<Q", footer[-8:])[0] != TABLE_MAGIC:
        raise SidFtError(path, "truncated or not a checkpoint index: it does not end with "
                               "the table magic number")
    _metaindex, pos = _block_handle(footer, 0, path)
    index_handle, _ = _block_handle(footer, pos, path)
    return index_handle


def _read_block(data: bytes, handle: tuple[int, int], path: str) -> bytes:
    """The contents of the block at ``handle``, after checking its trailer (type and masked CRC32C)."""
    offset, size = handle
    end = offset + size + TRAILER_BYTES
    if end > len(data) - FOOTER_BYTES:
        raise SidFtError(path, f"garbled index: block at byte {offset} ({size} bytes) runs past the footer")
    block = data[offset:offset + size]
    kind = data[offset + size]
    stored = struct.unpack("<I", data[offset + size + 1:end])[0]
    if masked_crc32c(data[offset:offset + size + 1]) != stored:
        raise SidFtError(path, f"damaged index: checksum mismatch in the block at byte {offset}")
    if kind != 0:
        raise SidFtError(path, f"index block at byte {offset} is compressed (type {kind}); "
                               "TensorFlow writes uncompressed indexes")
    return block


def _block_entries(block: bytes, path: str) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of a block, keys expanded from their shared prefixes."""
    if len(block) < 4:
        raise SidFtError(path, "garbled index: block shorter than its restart count")
    restarts = struct.unpack("<I", block[-4:])[0]
    limit = len(block) - 4 * (restarts + 1)
    if limit < 0:
        raise SidFtError(path, "garbled index: restart array larger than its block")
    entries, key, pos = [], b"", 0
    while pos < limit:
        shared, pos = _varint(block, pos, path, "a block entry")
        fresh, pos = _varint(block, pos, path, "a block entry")
        length, pos = _varint(block, pos, path, "a block entry")
        if shared > len(key) or pos + fresh + length > limit:
            raise SidFtError(path, "garbled index: block entry out of bounds")
        key = key[:shared] + block[pos:pos + fresh]
        pos += fresh
        entries.append((key, block[pos:pos + length]))
        pos += length
    return entries


def table_entries(data: bytes, path: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of an SSTable held in ``data``, in key order."""
    index_block = _read_block(data, _footer(data, path), path)
    entries = []
    for _separator, handle_bytes in _block_entries(index_block, path):
        handle, _ = _block_handle(handle_bytes, 0, path)
        entries.extend(_block_entries(_read_block(data, handle, path), path))
    return entries


# --------------------------------------------------------------------------- bundle messages


def _header(value: bytes, path: str) -> tuple[int, bool, int]:
    """(num_shards, little_endian, producer) from a BundleHeaderProto."""
    num_shards, endianness, producer = 0, 0, 0
    for number, item in proto_fields(value, path, "the bundle header"):
        if number == 1:
            num_shards = _signed64(item)
        elif number == 2:
            endianness = item
        elif number == 3 and isinstance(item, bytes):
            producer = next((v for n, v in proto_fields(item, path, "the version") if n == 1), 0)
    if num_shards < 1:
        raise SidFtError(path, f"garbled index: the header names {num_shards} data shards")
    return num_shards, endianness == 0, producer


def _shape(value: bytes, path: str, name: str) -> tuple[int, ...]:
    """Dims of a TensorShapeProto (field 2: dim {size = 1}; field 3: unknown_rank)."""
    dims = []
    for number, item in proto_fields(value, path, f"the shape of {name!r}"):
        if number == 2 and isinstance(item, bytes):
            size = next((v for n, v in proto_fields(item, path, f"the shape of {name!r}") if n == 1), 0)
            dims.append(_signed64(size))
    return tuple(dims)


def _entry(name: str, value: bytes, path: str) -> TensorEntry:
    """A :class:`TensorEntry` from a BundleEntryProto."""
    got: dict[str, int | tuple] = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": 0}
    sliced = False
    for number, item in proto_fields(value, path, f"the entry of {name!r}"):
        if number == 2 and isinstance(item, bytes):
            got["shape"] = _shape(item, path, name)
        elif number == 7:
            sliced = True
        elif number in (1, 3, 4, 5, 6) and isinstance(item, int):
            key = {1: "dtype", 3: "shard_id", 4: "offset", 5: "size", 6: "crc32c"}[number]
            got[key] = _signed64(item) if number in (3, 4, 5) else item
    if min(got["shard_id"], got["offset"], got["size"]) < 0:
        raise SidFtError(path, f"garbled index: negative shard, offset or size for {name!r}")
    dtype = DTYPES.get(got["dtype"], (f"dtype{got['dtype']}", None))[0]
    return TensorEntry(name, dtype, got["shape"], got["shard_id"], got["offset"], got["size"],
                       got["crc32c"], sliced)


def _strip_index_suffix(path: str) -> str:
    return path[:-len(".index")] if path.endswith(".index") else path


def read_bundle_index(prefix: str | os.PathLike) -> BundleIndex:
    """Parse ``<prefix>.index`` (``prefix`` may also name the .index file itself).

    SidFtError(index file, reason) when it is missing, truncated or garbled.
    """
    prefix = _strip_index_suffix(os.fspath(prefix))
    path = index_path(prefix)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise SidFtError(path, "missing: no checkpoint index here") from None
    except OSError as exc:
        raise SidFtError(path, f"cannot read the checkpoint index ({exc.strerror or exc})") from None
    entries = table_entries(data, path)
    if not entries or entries[0][0] != b"":
        raise SidFtError(path, "garbled index: no bundle header (the empty key)")
    num_shards, little_endian, producer = _header(entries[0][1], path)
    tensors = {}
    for key, value in entries[1:]:
        name = key.decode("utf-8", "backslashreplace")
        tensors[name] = _entry(name, value, path)
        if tensors[name].shard_id >= num_shards:
            raise SidFtError(path, f"garbled index: {name!r} lies in shard {tensors[name].shard_id} "
                                   f"of {num_shards}")
    return BundleIndex(prefix, path, num_shards, little_endian, producer, tensors)
