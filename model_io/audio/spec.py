"""Fixed facts about Gemma 3n's audio path that no GGUF stores.

llama.cpp's converter writes only a few ``clip.audio.*`` keys (two of them wrong,
see gemma3n-audio.md §4.3), so everything below is hard-coded from transformers'
``Gemma3nAudioConfig`` / ``Gemma3nAudioFeatureExtractor`` / ``Gemma3nProcessor``
defaults, which the released E2B and E4B checkpoints use unchanged.  Shapes
(widths, layer count, heads, kernel sizes) are read from the tensors instead.
"""

from __future__ import annotations

import math

# Front end (feature_extraction_gemma3n.py defaults).
SAMPLE_RATE = 16_000
N_MELS = 128
FRAME_LENGTH = 512  # round(16000 * 32 ms)
HOP_LENGTH = 160  # round(16000 * 10 ms)
FFT_LENGTH = 1024  # next power of two above the frame, doubled by fft_overdrive
PREEMPHASIS = 0.97
MEL_FLOOR = 1e-5
MEL_LOW_HZ = 125.0
MEL_HIGH_HZ = 7600.0
PAD_MULTIPLE = 128  # the extractor right-pads every clip to a multiple of 128 samples
MAX_SAMPLES = 480_000  # 30 s: the extractor truncates anything longer

# Encoder (Gemma3nAudioConfig defaults; not in the GGUF).
RMS_EPS = 1e-6  # the GGUF's clip.audio.attention.layer_norm_epsilon says 1e-5, which is wrong
GROUP_NORM_EPS = 1e-3
CHUNK_SIZE = 12
CONTEXT_LEFT = 13  # includes the query itself: 12 past frames
CONTEXT_RIGHT = 0
MAX_PAST = CONTEXT_LEFT - 1
LOGIT_CAP = 50.0
REDUCTION = 4
RESIDUAL_WEIGHT = 0.5
SSCP_STRIDE = 2  # both convolutions, time and frequency
SSCP_KERNEL = 3

# Embedder and prompt (Gemma3nAudioConfig / Gemma3nProcessor / tokenizer).
AUDIO_VOCAB_OFFSET = 262_272
AUDIO_VOCAB_SIZE = 128
END_OF_AUDIO_ID = 262_272  # <end_of_audio>: audio hard-embedding row 0
AUDIO_SOFT_TOKEN_ID = 262_273  # <audio_soft_token>: placeholder, always overwritten
AUDIO_PAD_ID = 262_399  # text vocab_size - 1: audio hard-embedding row 127
START_OF_AUDIO_ID = 256_000  # <start_of_audio>: an ordinary text-vocabulary token
SOFT_TOKENS_PER_CLIP = 188
ROWS_PER_CLIP = SOFT_TOKENS_PER_CLIP + 1  # the soft rows plus <end_of_audio>


def n_mel_frames(n_samples: int) -> int:
    """Mel frames the extractor makes for one clip (after truncation and padding to 128 samples)."""
    padded = PAD_MULTIPLE * math.ceil(max(min(n_samples, MAX_SAMPLES), FRAME_LENGTH + 1) / PAD_MULTIPLE)
    return (padded - (FRAME_LENGTH + 1)) // HOP_LENGTH + 1


def n_audio_tokens(n_samples: int) -> int:
    """Real (non-padding) soft tokens for one clip: 1 s → 7, 5 s → 32, 30 s → 188."""
    t1 = math.ceil(n_mel_frames(n_samples) / SSCP_STRIDE)
    t2 = math.ceil(t1 / SSCP_STRIDE)
    return math.ceil(t2 / REDUCTION)
