"""Gemma 3n audio input without llama.cpp's help: file decoding, log-mel, NumPy conformer, embedder.

llama.cpp's mtmd skips Gemma 3n's audio tower, so the app runs it itself and
feeds the resulting rows to the language model as embeddings:

* :func:`decode_audio` — any WAV/FLAC/Ogg/MP3 file → float32 16 kHz mono;
* :func:`log_mel` — Gemma 3n's exact 128-bin log-mel features;
* :class:`AudioTower` / :func:`embed_clip` — the USM conformer and audio embedder,
  weights read from the mmproj GGUF;
* :class:`AudioEncoder` — the ``MediaEncoder`` the engine uses (prompt layout + rows).
"""

from model_io.audio.decode import decode_audio
from model_io.audio.encoder import AudioEncoder
from model_io.audio.features import log_mel
from model_io.audio.spec import n_audio_tokens, n_mel_frames
from model_io.audio.tower import AudioTower, embed_clip

__all__ = [
    "AudioEncoder",
    "AudioTower",
    "decode_audio",
    "embed_clip",
    "log_mel",
    "n_audio_tokens",
    "n_mel_frames",
]
