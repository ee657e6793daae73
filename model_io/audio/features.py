"""Gemma 3n's log-mel front end, numerically identical to ``Gemma3nAudioFeatureExtractor``.

The model was trained on these exact features, so every quirk is kept: frames of
513 samples with HTK-style pre-emphasis (the 513th sample only feeds the
pre-emphasis and is then dropped), a periodic 512-point Hann window, a 1024-point
FFT magnitude, 128 HTK mel filters without area normalisation and a natural log
floored at 1e-5.  The dtypes follow the extractor too (float32 frames and FFT,
float64 filterbank and log), which keeps the output within ~1e-6 of it.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from model_io.audio import spec

_FRAME_SPAN = spec.FRAME_LENGTH + 1


@cache
def mel_filterbank() -> np.ndarray:
    """The extractor's (513, 128) float64 filterbank (``create_fb_matrix``, HTK mel, no Slaney norm)."""
    n_freqs = spec.FFT_LENGTH // 2 + 1
    all_freqs = np.arange(n_freqs, dtype=np.float32) * (spec.SAMPLE_RATE / spec.FFT_LENGTH)
    m_min = 2595.0 * math.log10(1.0 + spec.MEL_LOW_HZ / 700.0)
    m_max = 2595.0 * math.log10(1.0 + spec.MEL_HIGH_HZ / 700.0)
    f_pts = 700.0 * (10 ** (np.linspace(m_min, m_max, spec.N_MELS + 2) / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    bank = np.maximum(np.zeros(1, dtype=np.float32), np.minimum(down, up))
    bank.setflags(write=False)
    return bank


@cache
def _window() -> np.ndarray:
    n = np.arange(spec.FRAME_LENGTH, dtype=np.float32)
    window = (0.5 * (1 - np.cos(2 * np.pi * n / spec.FRAME_LENGTH))).astype(np.float32)
    window.setflags(write=False)
    return window


def prepare_waveform(waveform: np.ndarray) -> np.ndarray:
    """What the extractor frames: float32 mono, cut to 30 s, zero-padded to a multiple of 128 samples.

    Clips shorter than one frame (513 samples) are padded with silence to one frame; the
    extractor would produce no frames at all and the encoder would fail.
    """
    wave = np.asarray(waveform, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform (1-D array), got shape {wave.shape}")
    wave = wave[: spec.MAX_SAMPLES]
    target = spec.PAD_MULTIPLE * math.ceil(max(len(wave), _FRAME_SPAN) / spec.PAD_MULTIPLE)
    if target == len(wave):
        return wave
    padded = np.zeros(target, dtype=np.float32)
    padded[: len(wave)] = wave
    return padded


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """(T, 128) float32 log-mel features of a 16 kHz mono clip, as Gemma 3n's extractor makes them."""
    wave = prepare_waveform(waveform)
    return log_mel_frames(wave, 0, n_complete_frames(len(wave)))


def n_complete_frames(n_samples: int) -> int:
    """Frames whose 513 samples all lie within the first ``n_samples`` samples."""
    return max(0, (n_samples - _FRAME_SPAN) // spec.HOP_LENGTH + 1)


def log_mel_frames(wave: np.ndarray, first: int, count: int) -> np.ndarray:
    """Log-mel frames ``first .. first + count - 1`` of ``wave`` (float32, starting at sample 0).

    Frame t reads samples ``160 t .. 160 t + 512`` only, so frames can be computed as soon
    as their samples exist: the streaming encoder calls this on a growing buffer and gets
    exactly the rows :func:`log_mel` gives for the whole clip.
    """
    if count <= 0:
        return np.zeros((0, spec.N_MELS), dtype=np.float32)
    start = first * spec.HOP_LENGTH
    if start + (count - 1) * spec.HOP_LENGTH + _FRAME_SPAN > len(wave):
        raise ValueError("not enough samples for the requested frames")
    wave = wave[start:]
    frames = np.lib.stride_tricks.as_strided(
        wave, shape=(count, _FRAME_SPAN), strides=(wave.strides[0] * spec.HOP_LENGTH, wave.strides[0])
    )
    emphasised = np.empty((count, spec.FRAME_LENGTH), dtype=np.float32)
    emphasised[:, 0] = frames[:, 0] * np.float32(1.0 - spec.PREEMPHASIS)
    emphasised[:, 1:] = frames[:, 1:-1] - np.float32(spec.PREEMPHASIS) * frames[:, :-2]
    emphasised *= _window()
    magnitude = np.abs(np.fft.rfft(emphasised, n=spec.FFT_LENGTH, axis=-1))
    mel = magnitude @ mel_filterbank()
    return np.log(np.maximum(mel, spec.MEL_FLOOR)).astype(np.float32)
