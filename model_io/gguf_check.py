"""Pre-flight validation of GGUF files, run before llama.cpp ever opens them.

llama.cpp aborts on some malformed files and reports others only in log lines a
user never sees, so every file the user picks goes through :func:`validate_gguf`
first.  It mirrors the structural checks of ggml's ``gguf.cpp`` (the loader
bundled with llama-cpp-python 0.3.36) and turns each failure into a one-line
:class:`ModelFileError` or :class:`UnsupportedModelError` that names the file.

gguf-py's ``GGUFReader`` is deliberately not used for the walk: it builds two
numpy objects per element of every metadata array (22 s for the 262,144-entry
vocabulary of Gemma 3 270M) and spins forever on a corrupt array length.  A
small bounds-checked reader walks the header with :mod:`struct` over a read-only
memory map instead, skipping array contents and never touching tensor data;
gguf-py supplies the format tables (value types, ggml types, block sizes,
architecture names).
"""

from __future__ import annotations

import math
import mmap
import os
import stat
import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, TypeAlias

from gguf.constants import (
    GGML_QUANT_SIZES,
    GGUF_DEFAULT_ALIGNMENT,
    MODEL_ARCH_NAMES,
    GGMLQuantizationType,
    GGUFValueType,
)

from model_io.errors import GemmaDeskError, ModelFileError, UnsupportedModelError

Expect: TypeAlias = Literal["text", "mmproj", "any"]
MetadataValue: TypeAlias = str | int | float | bool

PROJECTOR_ARCHITECTURE = "clip"
KNOWN_ARCHITECTURES: frozenset[str] = frozenset(MODEL_ARCH_NAMES.values()) | {PROJECTOR_ARCHITECTURE}
SUPPORTED_GGUF_VERSIONS = (2, 3)

_MAGIC = b"GGUF"
_HEADER_SIZE = 24  # magic, version, tensor count, metadata count
_MIN_KV_SIZE = 8 + 1 + 4 + 1  # key length, one-byte key, value type, one-byte value
_MIN_TENSOR_INFO_SIZE = 8 + 4 + 4 + 8  # name length, n_dims, ggml type, data offset
_MAX_STRING_LENGTH = 1 << 30  # ggml's GGUF_MAX_STRING_LENGTH
_MAX_ARRAY_ELEMENTS = 1 << 30  # ggml's GGUF_MAX_ARRAY_ELEMENTS
_MAX_KEY_LENGTH = 1 << 16  # real keys are < 100 bytes; anything this long is corruption
_MAX_KEPT_STRING = 1 << 20  # longer metadata strings are validated but not kept in ``kv``
# Walking a string array is a Python loop (~0.4 s per million strings), so a corrupt count over a
# zero-filled tail would spin for minutes; 4M is 16x the largest real vocabulary (Gemma's 262,144).
_MAX_STRING_ARRAY = 1 << 22
_MAX_TENSOR_NAME = 63  # GGML_MAX_NAME minus the terminating NUL
_MAX_DIMS = 4  # GGML_MAX_DIMS
_INT64_MAX = (1 << 63) - 1

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_SCALARS: dict[GGUFValueType, struct.Struct] = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: _U32,
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<b"),
    GGUFValueType.UINT64: _U64,
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}


class GgufTensor(NamedTuple):
    """One tensor-info entry. ``shape`` is in ggml order (row length first); ``offset`` is absolute."""

    name: str
    type_name: str
    shape: tuple[int, ...]
    n_elements: int
    n_bytes: int
    offset: int


@dataclass(frozen=True)
class GgufSummary:
    """What the header says, after every structural check passed; cheap to keep around."""

    path: Path
    file_size: int
    version: int
    architecture: str
    n_tensors: int
    kv: Mapping[str, MetadataValue]  # scalar metadata only (strings up to 1 MiB)
    array_lengths: Mapping[str, int]  # element count of each array-valued key, e.g. the vocabulary
    tensors: tuple[GgufTensor, ...]
    alignment: int
    data_offset: int

    @property
    def is_projector(self) -> bool:
        """True for mmproj (vision/audio projector) files, which llama.cpp loads through mtmd."""
        return self.architecture == PROJECTOR_ARCHITECTURE


def validate_gguf(path: str | os.PathLike[str], *, expect: Expect = "any") -> GgufSummary:
    """Check ``path`` thoroughly enough that llama.cpp cannot choke on it, and summarise its header.

    Raises ModelFileError for missing, unreadable, truncated or malformed files and
    UnsupportedModelError for well-formed files this app cannot use as asked.
    """
    if expect not in ("text", "mmproj", "any"):
        raise ValueError(f"expect must be 'text', 'mmproj' or 'any', not {expect!r}")
    file_path = Path(path)
    label = str(file_path)
    _check_regular_file(file_path, label)
    with _mapped(file_path, label) as buf:
        try:
            summary = _parse(buf, file_path, label)
        except GemmaDeskError:
            raise
        except Exception as exc:  # the parser must never let a raw exception reach the user
            raise ModelFileError(
                f"{label}: could not parse the GGUF header ({type(exc).__name__}: {exc})"
            ) from exc
    _check_contents(summary, label, expect)
    return summary


def _check_regular_file(path: Path, label: str) -> None:
    """Reject missing paths, folders, devices and empty files before opening anything."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise ModelFileError(f"{label}: file not found") from None
    except PermissionError:
        raise ModelFileError(f"{label}: cannot read the file (permission denied)") from None
    except OSError as exc:
        raise ModelFileError(f"{label}: cannot access the file ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise ModelFileError(f"{label}: is a folder, not a model file; choose the .gguf file inside it")
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(f"{label}: is not a regular file")
    if info.st_size == 0:
        raise ModelFileError(f"{label}: file is empty (0 bytes); the download probably failed")


@contextmanager
def _mapped(path: Path, label: str) -> Iterator[mmap.mmap]:
    """Map the file read-only so that walking a multi-GB header costs no RAM; unmapped on exit.

    Only opening and mapping are guarded here, so errors raised by the caller's block pass through.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with statement below
    except PermissionError:
        raise ModelFileError(f"{label}: cannot read the file (permission denied)") from None
    except OSError as exc:
        raise ModelFileError(f"{label}: cannot open the file ({exc.strerror or exc})") from exc
    with handle:
        try:
            buf = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # the file became empty after the stat
            raise ModelFileError(f"{label}: file is empty (0 bytes); the download probably failed") from exc
        except OSError as exc:
            raise ModelFileError(f"{label}: cannot read the file ({exc.strerror or exc})") from exc
        with buf:
            yield buf


class _Reader:
    """Little-endian cursor over the mapped file that never reads past its end."""

    def __init__(self, buf: mmap.mmap, label: str) -> None:
        self.buf = buf
        self.size = len(buf)
        self.pos = 0
        self.label = label

    def error(self, problem: str) -> ModelFileError:
        return ModelFileError(f"{self.label}: {problem}")

    def truncated(self, what: str, at: int) -> ModelFileError:
        return self.error(
            f"file is truncated: {what} at byte {at:,} runs past the end of the {self.size:,}-byte file "
            "(incomplete download?)"
        )

    def advance(self, n: int, what: str) -> int:
        """Reserve ``n`` bytes and return where they start."""
        start = self.pos
        if n > self.size - start:
            raise self.truncated(what, start)
        self.pos = start + n
        return start

    def unpack(self, fmt: struct.Struct, what: str) -> int | float:
        value: int | float = fmt.unpack_from(self.buf, self.advance(fmt.size, what))[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.unpack(_U32, what))

    def u64(self, what: str) -> int:
        return int(self.unpack(_U64, what))

    def string_length(self, what: str) -> int:
        length = self.u64(f"length of {what}")
        if length > _MAX_STRING_LENGTH:
            raise self.error(f"{what} claims to be {length:,} bytes long; the header is corrupt")
        return length

    def text(self, what: str, limit: int) -> str:
        """Read a string that must be at most ``limit`` bytes (keys, tensor names)."""
        length = self.string_length(what)
        if length > limit:
            raise self.error(
                f"{what} is {length:,} bytes long (at most {limit:,} allowed); the header is corrupt"
            )
        start = self.advance(length, what)
        return self.buf[start : start + length].decode("utf-8", errors="replace")

    def skip_strings(self, count: int, what: str) -> None:
        """Walk ``count`` length-prefixed strings without decoding them (vocabularies are huge)."""
        buf, pos, end, unpack = self.buf, self.pos, self.size, _U64.unpack_from
        for _ in range(count):
            if end - pos < 8:
                raise self.truncated(what, pos)
            (length,) = unpack(buf, pos)
            if length > _MAX_STRING_LENGTH:
                raise self.error(
                    f"a string in {what} claims to be {length:,} bytes long; the header is corrupt"
                )
            pos += 8 + length
            if pos > end:
                raise self.truncated(what, pos - length - 8)
        self.pos = pos


def _q(text: str, limit: int = 64) -> str:
    """Quote a name taken from the file for a one-line message: escaped, and shortened if long."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return "'" + shown.encode("unicode_escape").decode("ascii").replace("'", "\\'") + "'"


def _parse(buf: mmap.mmap, path: Path, label: str) -> GgufSummary:
    """Walk header, metadata and tensor infos, then check the data layout against the file size."""
    reader = _Reader(buf, label)
    version, n_tensors, n_kv = _read_fixed_header(reader)
    kv, array_lengths, value_types = _read_metadata(reader, n_kv)
    alignment = _alignment(reader, kv, value_types)
    infos = [_read_tensor_info(reader, index) for index in range(n_tensors)]
    _check_unique_names(reader, infos)
    data_offset = _pad(reader.pos, alignment) if n_tensors else reader.pos
    tensors = _place_tensors(reader, infos, data_offset, alignment)
    architecture = kv.get("general.architecture")
    return GgufSummary(
        path=path,
        file_size=reader.size,
        version=version,
        architecture=architecture if isinstance(architecture, str) else "",
        n_tensors=n_tensors,
        kv=kv,
        array_lengths=array_lengths,
        tensors=tensors,
        alignment=alignment,
        data_offset=data_offset,
    )


def _read_fixed_header(reader: _Reader) -> tuple[int, int, int]:
    """Magic, version and the two counts; counts are checked against the file size before use."""
    head = bytes(reader.buf[:64])
    if not head.startswith(_MAGIC):
        if _MAGIC.startswith(head):
            raise reader.error(f"file is truncated: only {reader.size} bytes, less than a GGUF header")
        raise reader.error(f"not a GGUF model file: {_not_gguf_hint(head)}")
    if reader.size < _HEADER_SIZE:
        raise reader.error(f"file is truncated: only {reader.size} bytes, less than a GGUF header")
    reader.pos = len(_MAGIC)
    version = _check_version(reader, reader.u32("version"))
    n_tensors = reader.u64("tensor count")
    n_kv = reader.u64("metadata count")
    _check_counts(reader, n_tensors, n_kv)
    return version, n_tensors, n_kv


def _not_gguf_hint(head: bytes) -> str:
    """Name the likely real format, because users mostly pick the wrong download."""
    lowered = head.lstrip().lower()
    if len(head) > 8 and head[8:9] == b"{":
        return "it looks like a safetensors file (Hugging Face weights); download a .gguf conversion instead"
    if lowered.startswith(b"<"):
        return "it is a web page (HTML), probably an error or login page saved instead of the model"
    if head.startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer, not the model itself; download the real file (e.g. git lfs pull)"
    if head[:4] in (b"lmgg", b"fmgg", b"tjgg", b"algg"):
        return "it is an old GGML/GGJT model from before GGUF; download a GGUF version of the model"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return "it looks like a PyTorch checkpoint or ZIP archive; download a .gguf conversion instead"
    if lowered.startswith((b"{", b"[")):
        return "it is a JSON/text file (e.g. config.json or a server error), not model weights"
    return (
        f"it starts with bytes {head[:4].hex(' ')} instead of 'GGUF' "
        "(a safetensors or PyTorch file, a saved web page, or a damaged download?)"
    )


def _check_version(reader: _Reader, version: int) -> int:
    if version & 0xFFFF == 0 and version:
        raise UnsupportedModelError(
            f"{reader.label}: this is a big-endian GGUF file; "
            "llama.cpp on this computer needs a little-endian one"
        )
    if version == 0:
        raise reader.error("GGUF version is 0; the header is corrupt")
    if version == 1:
        raise UnsupportedModelError(
            f"{reader.label}: GGUF version 1 is no longer supported by llama.cpp; download a newer conversion"
        )
    if version not in SUPPORTED_GGUF_VERSIONS:
        raise UnsupportedModelError(
            f"{reader.label}: GGUF version {version} is not supported (only versions 2 and 3 can be loaded)"
        )
    return version


def _check_counts(reader: _Reader, n_tensors: int, n_kv: int) -> None:
    """Refuse counts the file cannot possibly hold, so a corrupt count never drives a long loop."""
    needed = n_tensors * _MIN_TENSOR_INFO_SIZE + n_kv * _MIN_KV_SIZE
    if needed > reader.size - _HEADER_SIZE:
        raise reader.error(
            f"header claims {n_tensors:,} tensors and {n_kv:,} metadata entries, more than a "
            f"{reader.size:,}-byte file can hold; the file is truncated or its header is corrupt"
        )


def _read_metadata(
    reader: _Reader, n_kv: int
) -> tuple[dict[str, MetadataValue], dict[str, int], dict[str, GGUFValueType]]:
    """Read every key/value pair; keep scalars, record array lengths, check types like ggml does."""
    kv: dict[str, MetadataValue] = {}
    array_lengths: dict[str, int] = {}
    value_types: dict[str, GGUFValueType] = {}
    for index in range(n_kv):
        key = reader.text(f"metadata key #{index}", _MAX_KEY_LENGTH)
        if not key:
            raise reader.error(f"metadata key #{index} is empty; the header is corrupt")
        if key in value_types:
            raise reader.error(f"metadata key {_q(key)} appears twice; the header is corrupt")
        value_type = _value_type(reader, key, reader.u32(f"type of {_q(key)}"))
        value_types[key] = value_type
        if value_type == GGUFValueType.ARRAY:
            array_lengths[key] = _skip_array(reader, key)
        else:
            value = _read_value(reader, key, value_type)
            if value is not None:
                kv[key] = value
    return kv, array_lengths, value_types


def _value_type(reader: _Reader, key: str, raw: int) -> GGUFValueType:
    try:
        return GGUFValueType(raw)
    except ValueError:
        raise reader.error(
            f"metadata key {_q(key)} has unknown value type {raw}; the header is corrupt"
        ) from None


def _read_value(reader: _Reader, key: str, value_type: GGUFValueType) -> MetadataValue | None:
    """One scalar; None for strings too long to be worth keeping (they are still bounds-checked)."""
    if value_type == GGUFValueType.STRING:
        length = reader.string_length(f"value of {_q(key)}")
        start = reader.advance(length, f"value of {_q(key)}")
        if length > _MAX_KEPT_STRING:
            return None
        return reader.buf[start : start + length].decode("utf-8", errors="replace")
    value = reader.unpack(_SCALARS[value_type], f"value of {_q(key)}")
    return bool(value) if value_type == GGUFValueType.BOOL else value


def _skip_array(reader: _Reader, key: str) -> int:
    """Bounds-check an array without materialising it; returns its length."""
    item_type = _value_type(reader, key, reader.u32(f"element type of {_q(key)}"))
    count = reader.u64(f"length of {_q(key)}")
    if item_type == GGUFValueType.ARRAY:
        raise reader.error(f"metadata key {_q(key)} is an array of arrays, which llama.cpp cannot read")
    item_size = 8 if item_type == GGUFValueType.STRING else _SCALARS[item_type].size
    if count > _MAX_ARRAY_ELEMENTS or count * item_size > reader.size - reader.pos:
        raise reader.error(
            f"metadata array {_q(key)} claims {count:,} elements, more than the file can hold; "
            "the file is truncated or corrupt"
        )
    if item_type == GGUFValueType.STRING:
        if count > _MAX_STRING_ARRAY:
            raise reader.error(
                f"metadata array {_q(key)} claims {count:,} strings, far more than any real vocabulary; "
                "the header is corrupt"
            )
        reader.skip_strings(count, f"metadata array {_q(key)}")
    else:
        reader.advance(count * item_size, f"metadata array {_q(key)}")
    return count


def _alignment(reader: _Reader, kv: Mapping[str, MetadataValue], types: Mapping[str, GGUFValueType]) -> int:
    """general.alignment, validated the way ggml does (uint32, power of two)."""
    if "general.alignment" not in types:
        return GGUF_DEFAULT_ALIGNMENT
    value = kv.get("general.alignment")
    if types["general.alignment"] != GGUFValueType.UINT32 or not isinstance(value, int):
        raise reader.error("general.alignment must be a uint32; the header is corrupt")
    if value <= 0 or value & (value - 1):
        raise reader.error(f"general.alignment is {value}, not a power of two; the header is corrupt")
    return value


class _TensorInfo(NamedTuple):
    name: str
    qtype: GGMLQuantizationType
    shape: tuple[int, ...]
    n_elements: int
    n_bytes: int
    relative_offset: int


def _read_tensor_info(reader: _Reader, index: int) -> _TensorInfo:
    """One tensor-info record with ggml's checks: name length, rank, dims, type, block alignment."""
    name = reader.text(f"name of tensor #{index}", _MAX_TENSOR_NAME)
    n_dims = reader.u32(f"rank of tensor {_q(name)}")
    if n_dims > _MAX_DIMS:
        raise reader.error(
            f"tensor {_q(name)} has {n_dims} dimensions (at most {_MAX_DIMS}); the header is corrupt"
        )
    shape = tuple(reader.u64(f"shape of tensor {_q(name)}") for _ in range(n_dims))
    qtype = _tensor_type(reader, name, reader.u32(f"type of tensor {_q(name)}"))
    relative_offset = reader.u64(f"offset of tensor {_q(name)}")
    if not _fits_int64(shape):
        raise reader.error(f"tensor {_q(name)} has an impossible shape {shape}; the header is corrupt")
    n_elements = math.prod(shape)
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    row = shape[0] if shape else 1
    if row % block_size:
        raise reader.error(
            f"tensor {_q(name)} has rows of {row} elements, not a multiple of the {qtype.name} block size "
            f"{block_size}; the header is corrupt"
        )
    n_bytes = n_elements // block_size * type_size
    return _TensorInfo(name, qtype, shape, n_elements, n_bytes, relative_offset)


def _fits_int64(shape: tuple[int, ...]) -> bool:
    """ggml's overflow rule, exactly: multiplying the dims left to right, no factor above 1 may overflow
    int64 (so (32, 2**62, 0) is refused although it has no elements: ggml refuses it too)."""
    if any(dim > _INT64_MAX for dim in shape):
        return False
    running = shape[0] if shape else 1
    for dim in shape[1:]:
        if dim > 1 and _INT64_MAX // dim < running:
            return False
        running *= dim
    return True


def _tensor_type(reader: _Reader, name: str, raw: int) -> GGMLQuantizationType:
    """Map the type id; an id gguf-py does not know may be a newer quantisation, not corruption."""
    qtype: GGMLQuantizationType | None
    try:
        qtype = GGMLQuantizationType(raw)
    except ValueError:
        qtype = None
    if qtype is None or qtype not in GGML_QUANT_SIZES:
        if raw < 256:
            raise UnsupportedModelError(
                f"{reader.label}: tensor {_q(name)} uses ggml type {raw}, which this version of Gemma Desk "
                "does not support (a newer quantisation format?)"
            )
        raise reader.error(f"tensor {_q(name)} has invalid ggml type {raw}; the header is corrupt")
    return qtype


def _check_unique_names(reader: _Reader, infos: list[_TensorInfo]) -> None:
    seen: set[str] = set()
    for info in infos:
        if info.name in seen:
            raise reader.error(f"tensor {_q(info.name)} appears twice; the header is corrupt")
        seen.add(info.name)


def _pad(value: int, alignment: int) -> int:
    return value + (-value) % alignment


def _place_tensors(
    reader: _Reader, infos: list[_TensorInfo], data_offset: int, alignment: int
) -> tuple[GgufTensor, ...]:
    """Tensors must be aligned and packed in order (ggml rejects anything else) and inside the file."""
    expected = 0
    data_end = data_offset
    for info in infos:
        if info.relative_offset % alignment:
            raise reader.error(
                f"tensor {_q(info.name)} starts at data offset {info.relative_offset:,}, "
                f"which is not aligned to {alignment} bytes; the header is corrupt"
            )
        if info.relative_offset != expected:
            raise reader.error(
                f"tensor {_q(info.name)} starts at data offset {info.relative_offset:,}, "
                f"expected {expected:,} (tensors overlap or are out of order); the header is corrupt"
            )
        expected += _pad(info.n_bytes, alignment)
        data_end = max(data_end, data_offset + info.relative_offset + info.n_bytes)
    if data_end > reader.size:
        missing = data_end - reader.size
        raise reader.error(
            f"file is truncated: the tensor data needs {data_end:,} bytes but the file has only "
            f"{reader.size:,} ({missing:,} bytes missing); the download is probably incomplete"
        )
    return tuple(
        GgufTensor(
            info.name,
            info.qtype.name,
            info.shape,
            info.n_elements,
            info.n_bytes,
            data_offset + info.relative_offset,
        )
        for info in infos
    )


def _check_contents(summary: GgufSummary, label: str, expect: Expect) -> None:
    """Semantic checks on a structurally sound file: architecture, tensors, text model vs mmproj."""
    _check_architecture(summary, label)
    if not summary.tensors:
        raise UnsupportedModelError(
            f"{label}: the file contains no tensors (a vocabulary-only GGUF?), so it cannot be run"
        )
    if expect == "text" and summary.is_projector:
        raise UnsupportedModelError(
            f"{label}: this is a vision/audio projector (mmproj), not a language model; "
            "open a text model and pass this file as its mmproj"
        )
    if expect == "mmproj" and not summary.is_projector:
        raise UnsupportedModelError(
            f"{label}: this is a {_q(summary.architecture)} language model, "
            "not a vision/audio projector (mmproj)"
        )


def _check_architecture(summary: GgufSummary, label: str) -> None:
    key = "general.architecture"
    if key in summary.array_lengths or not isinstance(summary.kv.get(key, ""), str):
        raise ModelFileError(f"{label}: general.architecture is not a string; the header is corrupt")
    if not summary.architecture:
        raise ModelFileError(
            f"{label}: the file has no general.architecture metadata, so it is not a model llama.cpp can load"
        )
    if summary.architecture not in KNOWN_ARCHITECTURES:
        raise UnsupportedModelError(
            f"{label}: model architecture {_q(summary.architecture)} "
            "is not supported by the bundled llama.cpp"
        )
