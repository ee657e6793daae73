"""Hostile audio: decode_audio ends in a one-line InputError or a sane waveform, fast, in bounded memory.

Seeds are real WAV, FLAC, Ogg Vorbis and MP3 files written by libsndfile; Hypothesis cuts and flips
them, builds WAV headers with absurd rates, channel counts, sample formats and chunk sizes, and
feeds garbage behind each format's magic bytes.  Python-side memory is measured with tracemalloc
for every example; the cases that claim gigabytes run in a child process with their RSS measured.
"""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fuzz_support import check_user_error, fuzz_settings, linux_only, run_bounded, within
from hypothesis import given
from hypothesis import strategies as st

from model_io.audio.decode import decode_audio
from model_io.errors import InputError

BOUND_SECONDS = 5.0  # a half-second clip decodes in milliseconds; this only catches hangs
PEAK_BYTES = 64 << 20  # Python-visible allocations while decoding a few-KB file
FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", None),
}
MAGIC = (
    b"",
    b"RIFF\x24\x00\x00\x00WAVEfmt ",
    b"fLaC",
    b"OggS\x00\x02",
    b"ID3\x04\x00\x00",
    b"\xff\xfb\x90\x64",
)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Half a second of a stereo tone with noise at 22.05 kHz, in each supported format."""
    folder = tmp_path_factory.mktemp("audio-seeds")
    t = np.arange(11025) / 22050
    rng = np.random.default_rng(3)
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), rng.normal(0, 0.1, t.size)], axis=1).astype(np.float32)
    out = {}
    for suffix, (fmt, subtype) in FORMATS.items():
        path = folder / f"seed.{suffix}"
        sf.write(path, stereo * 0.5, 22050, format=fmt, subtype=subtype)
        out[suffix] = path.read_bytes()
    return out


def decode_outcome(path: Path) -> str:
    """'ok' for a sane waveform, 'error' for a proper InputError; anything else fails."""
    tracemalloc.start()
    try:
        with within(BOUND_SECONDS, f"decoding {path.name}"):
            try:
                wave = decode_audio(path)
            except InputError as exc:
                check_user_error(exc, InputError, path.name)
                return "error"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"decoding {path.stat().st_size} bytes peaked at {peak >> 20} MB"
    assert wave.dtype == np.float32 and wave.ndim == 1 and wave.size > 0
    assert np.isfinite(wave).all()
    return "ok"


def wav_header(
    *,
    tag: int,
    channels: int,
    rate: int,
    bits: int,
    block_align: int,
    fmt_size: int,
    data_size: int | None,
    data: bytes,
) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * block_align) & 0xFFFFFFFF, block_align, bits)
    fmt = fmt.ljust(min(fmt_size, 64), b"\0")  # the claimed size may be 4 GB; the bytes stay few
    chunk = b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt
    chunk += b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data
    return b"RIFF" + struct.pack("<I", len(chunk)) + chunk


wav_headers = st.builds(
    wav_header,
    tag=st.sampled_from((1, 3, 6, 7, 0x55, 0xFFFE, 0, 0xFFFF)),
    channels=st.sampled_from((0, 1, 2, 6, 255, 1024, 1025, 65535)),
    rate=st.sampled_from((0, 1, 999, 1000, 8000, 44100, 384000, (1 << 31) - 1, (1 << 32) - 1)),
    bits=st.sampled_from((0, 1, 7, 8, 16, 24, 32, 64, 65535)),
    block_align=st.sampled_from((0, 1, 2, 4, 8, 2048, 65535)),
    fmt_size=st.sampled_from((0, 14, 16, 18, 40, 0xFFFFFFFF)),
    data_size=st.one_of(st.none(), st.sampled_from((0, 1, 0x7FFFFFFF, 0xFFFFFFFF))),
    data=st.binary(max_size=4096),
)


def test_garbage_behind_each_format_magic(tmp_path: Path) -> None:
    outcomes = []

    @fuzz_settings(120)
    @given(st.sampled_from(MAGIC), st.binary(max_size=2048))
    def check(magic: bytes, body: bytes) -> None:
        path = tmp_path / "garbage.bin"
        path.write_bytes(magic + body or b"\0")
        outcomes.append(decode_outcome(path))

    check()
    assert "error" in outcomes


def test_cut_and_flipped_real_files(tmp_path: Path, seeds: dict[str, bytes]) -> None:
    outcomes = []

    @fuzz_settings(200)
    @given(st.sampled_from(sorted(seeds)), st.data())
    def check(suffix: str, data: st.DataObject) -> None:
        content = bytearray(seeds[suffix])
        for _ in range(data.draw(st.integers(0, 4))):
            content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
        cut = data.draw(st.one_of(st.none(), st.integers(0, len(content))))
        path = tmp_path / f"damaged.{suffix}"
        path.write_bytes(bytes(content[:cut]) or b"\0")
        outcomes.append(decode_outcome(path))

    check()
    assert {"ok", "error"} <= set(outcomes)


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_cut_of_a_real_file(tmp_path: Path, seeds: dict[str, bytes], suffix: str) -> None:
    """Each of the first 128 bytes (headers), then every 1/64 of the file."""
    content = seeds[suffix]
    cuts = sorted({*range(1, 128), *range(128, len(content), max(1, len(content) // 64))})
    path = tmp_path / f"cut.{suffix}"
    for size in cuts:
        path.write_bytes(content[:size])
        decode_outcome(path)


def test_absurd_wav_headers(tmp_path: Path) -> None:
    outcomes = []

    @fuzz_settings(250)
    @given(wav_headers)
    def check(content: bytes) -> None:
        path = tmp_path / "absurd.wav"
        path.write_bytes(content)
        outcomes.append(decode_outcome(path))

    check()
    assert {"ok", "error"} <= set(outcomes)


@linux_only
def test_headers_claiming_huge_audio_stay_small(tmp_path: Path) -> None:
    """1024 channels, a 4 GB data claim, 1 Hz and 384 kHz: no big allocation, no huge upsampling."""
    cases = {
        "channels": dict(tag=1, channels=1024, rate=48000, bits=16, block_align=2048, data=bytes(2048 * 600)),
        "claim": dict(
            tag=1, channels=1, rate=8000, bits=8, block_align=1, data=bytes(4000), data_size=0xFFFFFFF0
        ),
        "one_hz": dict(tag=1, channels=1, rate=1, bits=8, block_align=1, data=bytes(200_000)),
        "fast": dict(tag=3, channels=2, rate=384000, bits=32, block_align=8, data=bytes(8 * 384000)),
    }
    for name, fields in cases.items():
        content = wav_header(fmt_size=16, **{"data_size": None, **fields})  # type: ignore[arg-type]
        (tmp_path / f"{name}.wav").write_bytes(content)
    result = run_bounded(
        f"""
        from pathlib import Path
        from model_io.audio.decode import decode_audio
        from model_io.errors import InputError

        def case():
            out = {{}}
            for path in sorted(Path({str(tmp_path)!r}).glob("*.wav")):
                try:
                    out[path.stem] = len(decode_audio(path))
                except InputError as exc:
                    out[path.stem] = str(exc)
            return out
        """
    )
    assert result["channels"] == 16000 * 600 // 48000  # 600 frames at 48 kHz → 200 samples at 16 kHz
    assert result["claim"] == 8000  # the 4,000 bytes really there, not the 4 GB claimed
    assert "too low for real audio" in str(result["one_hz"])
    assert result["fast"] == 16000
    assert result["rss_growth_mb"] < 60, result


@linux_only
def test_silence_bomb_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    """FLAC stores silence in a few bytes a second: a small file can claim hours.  With the limit set
    to one minute, a three-minute file is refused from its header, and one whose header hides its
    length (total samples 0, "unknown") is refused after decoding just past the limit."""
    honest, hidden = tmp_path / "silence.flac", tmp_path / "hidden.flac"
    with sf.SoundFile(honest, "w", 8000, 1, format="FLAC") as handle:
        for _ in range(180):
            handle.write(np.zeros(8000, np.float32))
    content = bytearray(honest.read_bytes())
    (packed,) = struct.unpack_from(">Q", content, 18)  # STREAMINFO: rate, channels, bits, 36-bit total
    struct.pack_into(">Q", content, 18, packed & ~((1 << 36) - 1))
    hidden.write_bytes(content)
    assert honest.stat().st_size < 100_000  # three minutes in a few KB
    result = run_bounded(
        f"""
        import time
        from model_io.audio import decode as decode
        from model_io.errors import InputError
        decode.MAX_SECONDS = 60

        def case():
            out = {{}}
            for name in ("silence", "hidden"):
                started = time.perf_counter()
                try:
                    decode.decode_audio({str(tmp_path)!r} + f"/{{name}}.flac")
                    out[name] = ["decoded", 0]
                except InputError as exc:
                    out[name] = [str(exc), time.perf_counter() - started]
            return out
        """
    )
    for name in ("silence", "hidden"):
        message, seconds = result[name]
        assert "longer than 60 seconds" in message and seconds < 10, result
    assert result["rss_growth_mb"] < 40, result  # a minute of 16 kHz float is 3.8 MB
