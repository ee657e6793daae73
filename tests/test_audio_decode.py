"""decode_audio: real files in every supported format at odd rates and channel counts, and bad inputs.

Files are written at test time with soundfile (libsndfile 1.2.2 encodes WAV, FLAC,
Ogg Vorbis and MP3), plus one made by SoX, a different encoder.  The decoded
signal is compared with the analytic 16 kHz mono mix of the tones that were written.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from model_io.audio import decode, decode_audio
from model_io.errors import InputError

TONES = ((440.0, 0.5), (1000.0, 0.3), (200.0, 0.1), (3000.0, 0.05))  # Hz, amplitude; one per channel


def tone_channels(rate: int, seconds: float, channels: int) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return np.stack([a * np.sin(2 * np.pi * f * t) for f, a in TONES[:channels]], axis=1).astype(np.float32)


def expected_16k(n: int, channels: int) -> np.ndarray:
    """The mono mix (channel mean) of the same tones, sampled at 16 kHz."""
    t = np.arange(n) / 16_000
    return sum(a * np.sin(2 * np.pi * f * t) for f, a in TONES[:channels]) / channels


# format, subtype, suffix, rate, channels, max error against the analytic signal
CASES = [
    ("WAV", "PCM_16", "wav", 44_100, 2, 1e-4),
    ("WAV", "FLOAT", "wav", 11_025, 1, 1e-4),
    ("WAV", "PCM_24", "wav", 16_000, 3, 1e-5),
    ("FLAC", "PCM_24", "flac", 37_800, 3, 1e-4),
    ("FLAC", "PCM_16", "flac", 96_000, 1, 1e-4),
    ("OGG", "VORBIS", "ogg", 37_800, 2, 0.03),
    ("OGG", "VORBIS", "ogg", 8_000, 1, 0.03),
    ("MP3", "MPEG_LAYER_III", "mp3", 22_050, 2, 0.03),
    ("MP3", "MPEG_LAYER_III", "mp3", 48_000, 1, 0.03),
]


@pytest.mark.parametrize(("fmt", "subtype", "suffix", "rate", "channels", "tol"), CASES)
def test_decodes_each_format_at_odd_rates_and_channels(tmp_path, fmt, subtype, suffix, rate, channels, tol):
    path = tmp_path / f"clip.{suffix}"
    seconds = 2.5
    sf.write(path, tone_channels(rate, seconds, channels), rate, format=fmt, subtype=subtype)
    wave = decode_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - seconds * 16_000) <= 1
    core = slice(800, len(wave) - 800)  # resampler and codec edges aside
    error = np.abs(wave[core] - expected_16k(len(wave), channels)[core]).max()
    assert error <= tol, f"{fmt}/{subtype} at {rate} Hz x{channels}: max error {error}"


def test_resampling_is_soxr_high_quality_and_streaming_matches_one_shot(tmp_path, monkeypatch):
    """Blocks far smaller than the file: same samples as resampling the whole signal at once."""
    monkeypatch.setattr(decode, "BLOCK_FRAMES", 1000)
    rate = 44_100
    data = tone_channels(rate, 1.3, 2)
    path = tmp_path / "clip.wav"
    sf.write(path, data, rate, subtype="FLOAT")
    streamed = decode_audio(path)
    one_shot = soxr.resample(data.mean(axis=1), rate, 16_000, quality="HQ")
    assert streamed.shape == one_shot.shape
    assert np.abs(streamed - one_shot).max() < 1e-6


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate", "channels"),
    [("MP3", "MPEG_LAYER_III", 48_000, 1), ("OGG", "VORBIS", 44_100, 2)],
)
def test_block_wise_decoding_equals_reading_the_whole_file(
    tmp_path, monkeypatch, fmt, subtype, rate, channels
):
    """Regression: soundfile's seek after each read scrambled block-wise MP3 decoding (libsndfile 1.2.2)."""
    path = tmp_path / f"clip.{fmt.lower()}"
    t = np.arange(rate * 3) / rate
    chirp = (0.4 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)
    sf.write(path, np.stack([chirp] * channels, axis=1), rate, format=fmt, subtype=subtype)
    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    expected = soxr.resample(whole.mean(axis=1), rate, 16_000, quality="HQ")
    monkeypatch.setattr(decode, "BLOCK_FRAMES", 1000)
    got = decode_audio(path)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-5


def test_reads_in_bounded_blocks(tmp_path, monkeypatch):
    """Memory stays bounded: libsndfile is never asked for more than one block of frames."""
    requested: list[int] = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        requested.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    monkeypatch.setattr(decode, "BLOCK_FRAMES", 4096)
    path = tmp_path / "long.flac"
    sf.write(path, tone_channels(48_000, 3.0, 2), 48_000)
    wave = decode_audio(path)
    assert len(wave) == 48_000
    assert requested and max(requested) == 4096 and -1 not in requested and len(requested) >= 35


def test_max_seconds_stops_early(tmp_path):
    path = tmp_path / "clip.ogg"
    sf.write(path, tone_channels(32_000, 3.0, 1), 32_000, format="OGG", subtype="VORBIS")
    assert len(decode_audio(path, max_seconds=1.25)) == 20_000
    assert len(decode_audio(path, max_seconds=10)) == 48_000


def test_16k_mono_passes_through_unchanged(tmp_path):
    data = tone_channels(16_000, 1.0, 1)[:, 0]
    path = tmp_path / "same.wav"
    sf.write(path, data, 16_000, subtype="FLOAT")
    np.testing.assert_array_equal(decode_audio(path), data)


def test_non_finite_samples_become_silence(tmp_path):
    data = np.full(1600, 0.25, dtype=np.float32)
    data[10], data[20], data[30] = np.nan, np.inf, -np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, data, 16_000, subtype="FLOAT")
    wave = decode_audio(path)
    assert np.isfinite(wave).all() and wave[10] == wave[20] == wave[30] == 0.0 and wave[0] == 0.25


def test_file_made_by_sox_decodes_like_the_original(tmp_path):
    """SoX (a separate encoder and resampler) upsamples to 44.1 kHz stereo FLAC; the result must agree."""
    sox = shutil.which("sox")
    assert sox is not None, "SoX is required for this test: apt-get install sox"
    original = tmp_path / "orig.wav"
    sf.write(original, tone_channels(22_050, 2.0, 1), 22_050, subtype="PCM_16")
    converted = tmp_path / "sox.flac"
    subprocess.run([sox, str(original), "-r", "44100", "-c", "2", str(converted)], check=True)
    assert sf.info(converted).samplerate == 44_100 and sf.info(converted).channels == 2
    a, b = decode_audio(original), decode_audio(converted)
    assert abs(len(a) - len(b)) <= 1
    n = min(len(a), len(b))
    assert np.abs(a[400 : n - 400] - b[400 : n - 400]).max() < 2e-3


# --------------------------------------------------------------------------- bad inputs


def _message(path: Path, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        decode_audio(path, **kwargs)
    assert str(path) in str(info.value), "the message must name the file"
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_file(tmp_path):
    assert "not found" in _message(tmp_path / "nope.wav")


def test_folder(tmp_path):
    assert "folder" in _message(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    assert "empty" in _message(path)


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is not audio at all\n" * 20,
        b"RIFF\x10\x00\x00\x00WAVEfmt \x00\x00garbage",
        bytes(range(256)) * 8,
    ],
)
def test_undecodable_file(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    assert "cannot decode" in _message(path)


def test_zero_length_audio(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros((0, 2), dtype=np.float32), 44_100)
    assert path.stat().st_size > 0
    assert "no audio samples" in _message(path)


def test_truncated_mp3_still_decodes_what_is_there_or_fails_cleanly(tmp_path):
    path = tmp_path / "cut.mp3"
    sf.write(path, tone_channels(44_100, 2.0, 2), 44_100, format="MP3", subtype="MPEG_LAYER_III")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        wave = decode_audio(path)
    except InputError as exc:
        assert str(path) in str(exc)
    else:
        assert 0 < len(wave) < 32_000 + 16_000 and np.isfinite(wave).all()
