"""The Gemma 3n audio tower's forward pass in NumPy (float32, one clip at a time).

A line-for-line port of transformers' ``Gemma3nAudioEncoder`` and the audio
``Gemma3nMultimodalEmbedder`` (gemma3n-audio.md §2-§3), reorganised for speed:
every projection is one float32 BLAS matrix product over all frames, and the
chunked local attention is computed directly from its meaning (each frame
attends to itself and the 12 frames before it) with strided windows instead of
HF's 12-frame blocks, which gives the same result without Python loops.  A
single clip has no padded frames (the extractor's padding stays within the last
frame), so the validity masks of the batched HF code are all true and omitted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_io.audio import spec
from model_io.audio.weights import AudioWeights, ConformerLayer, FeedForward, Subsampler

F32 = np.float32
_MASKED = np.finfo(np.float32).min


def linear(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``x @ weight.T`` in float32 (a float16 weight is widened for this product only)."""
    if weight.dtype != F32:
        weight = weight.astype(F32)
    return x @ weight.T


def rms_norm(x: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Gemma 3n's RMSNorm: ``x * (mean(x²) + eps)^-½ * w`` (the weight itself, no ``1 + w``)."""
    mean_square = np.einsum("...i,...i->...", x, x)[..., None] / F32(x.shape[-1])
    out = x * (mean_square + F32(spec.RMS_EPS)) ** F32(-0.5)
    if weight is not None:
        out *= weight
    return out


def silu(x: np.ndarray) -> np.ndarray:
    """x·sigmoid(x) in place, via tanh so large negative inputs cannot overflow ``exp``."""
    sig = np.tanh(x * F32(0.5))
    sig += F32(1.0)
    sig *= F32(0.5)
    x *= sig
    return x


def sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.tanh(x * F32(0.5))
    out += F32(1.0)
    out *= F32(0.5)
    return out


# ------------------------------------------------------------------ sub-sample convolution projection


def _conv2d_stride2(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """3x3 stride-2 convolution of x [T, F, C_in] with weight [C_out, C_in, 3, 3] (time, frequency).

    Time is padded by (0, 2) at the end ("reverse causal"), frequency by (1, 1), as
    ``Gemma3nAudioSSCPConvBlock`` does.  Computed as nine strided-slice matrix products.
    """
    t_in, f_in, c_in = x.shape
    k, s = spec.SSCP_KERNEL, spec.SSCP_STRIDE
    t_out = (t_in + (k - 1) - k) // s + 1
    f_out = (f_in + 2 - k) // s + 1
    padded = np.zeros((t_in + k - 1, f_in + 2, c_in), dtype=F32)
    padded[:t_in, 1 : f_in + 1] = x
    out = np.zeros((t_out * f_out, weight.shape[0]), dtype=F32)
    for kt in range(k):
        for kf in range(k):
            window = padded[kt : kt + s * t_out : s, kf : kf + s * f_out : s].reshape(t_out * f_out, c_in)
            out += window @ weight[:, :, kt, kf].T
    return out.reshape(t_out, f_out, -1)


def cumulative_group_norm(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``Gemma3nAudioCumulativeGroupNorm`` on x [T, F, C]: statistics over (F, C), cumulative over time.

    The variance sums each step's squared deviations from *that step's* running mean
    (the JAX-compatible quirk), so it is not the plain running variance.
    """
    t, f, c = x.shape
    count = np.arange(1, t + 1, dtype=np.float64) * (f * c)
    mean = np.cumsum(x.sum(axis=(1, 2), dtype=np.float64)) / count
    centred = x - mean.astype(F32)[:, None, None]
    square_sums = np.einsum("tfc,tfc->t", centred, centred, dtype=np.float64)
    variance = np.cumsum(square_sums) / count
    centred *= (1.0 / np.sqrt(variance + spec.GROUP_NORM_EPS)).astype(F32)[:, None, None]
    centred *= weight
    return centred


def subsample(mel: np.ndarray, sscp: Subsampler) -> np.ndarray:
    """Log-mel [T, 128] → [ceil(ceil(T/2)/2), d_model]: two conv/norm/ReLU blocks and a projection."""
    x = mel.astype(F32)[:, :, None]
    for conv, norm in ((sscp.conv0, sscp.norm0), (sscp.conv1, sscp.norm1)):
        x = cumulative_group_norm(_conv2d_stride2(x, conv), norm)
        np.maximum(x, F32(0.0), out=x)
    return linear(x.reshape(x.shape[0], -1), sscp.proj)


# ------------------------------------------------------------------ conformer


def feed_forward(x: np.ndarray, ffn: FeedForward) -> np.ndarray:
    """Half-step macaron FFN: ``x + 0.5 * post_norm(W2 silu(W1 pre_norm(x))))``."""
    h = silu(linear(rms_norm(x, ffn.pre_norm), ffn.up))
    h = rms_norm(linear(h, ffn.down), ffn.post_norm)
    h *= F32(spec.RESIDUAL_WEIGHT)
    return x + h


def local_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Each frame t attends to frames t-12..t; q, k, v [T, N, H] (q pre-scaled), rel [13, N, H] → [T, N*H].

    Logit = q·k + q·rel[j] for key j of the window (distance 12 - j), soft-capped at ±50;
    keys before the clip start are masked, as HF's zero-padded context blocks are.
    """
    t, n, h = q.shape
    past = spec.MAX_PAST
    span = past + 1
    keys = np.concatenate([np.zeros((past, n, h), dtype=F32), k])
    values = np.concatenate([np.zeros((past, n, h), dtype=F32), v])
    key_windows = np.lib.stride_tricks.sliding_window_view(keys, span, axis=0)  # [T, N, H, span]
    value_windows = np.lib.stride_tricks.sliding_window_view(values, span, axis=0)
    logits = np.einsum("tnh,tnhj->tnj", q, key_windows, optimize=False)
    logits += np.matmul(q.transpose(1, 0, 2), rel.transpose(1, 2, 0)).transpose(1, 0, 2)
    logits = np.tanh(logits / F32(spec.LOGIT_CAP)) * F32(spec.LOGIT_CAP)
    first = min(t, past)  # only the first 12 frames have keys before the clip start
    if first:
        before_start = np.arange(span)[None, :] < (past - np.arange(first))[:, None]
        logits[:first] = np.where(before_start[:, None, :], _MASKED, logits[:first])
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    out = np.einsum("tnj,tnhj->tnh", weights, value_windows, optimize=False)
    return out.reshape(t, n * h)


def attention_block(x: np.ndarray, layer: ConformerLayer, n_head: int) -> np.ndarray:
    t, d = x.shape
    qkv = linear(rms_norm(x, layer.attn_norm), layer.qkv)
    q = qkv[:, :d].reshape(t, n_head, -1) * layer.q_scale
    k = qkv[:, d : 2 * d].reshape(t, n_head, -1)
    v = qkv[:, 2 * d :].reshape(t, n_head, -1)
    attended = local_attention(q, k, v, layer.rel)
    return x + rms_norm(linear(attended, layer.attn_out), layer.attn_post_norm)


def light_conv(x: np.ndarray, layer: ConformerLayer) -> np.ndarray:
    """Pointwise GLU, causal depthwise conv (kernel K, left zero-padding K-1), norm, SiLU, pointwise."""
    t, d = x.shape
    h = linear(rms_norm(x, layer.conv_pre_norm), layer.conv_start)
    gated = h[:, :d] * sigmoid(h[:, d:])
    kernel = layer.conv_dw.shape[0]
    padded = np.concatenate([np.zeros((kernel - 1, d), dtype=F32), gated])
    y = padded[:t] * layer.conv_dw[0]
    for j in range(1, kernel):
        y += padded[j : j + t] * layer.conv_dw[j]
    y = silu(rms_norm(y, layer.conv_norm))
    return x + linear(y, layer.conv_end)


def conformer_block(x: np.ndarray, layer: ConformerLayer, n_head: int) -> np.ndarray:
    x = feed_forward(x, layer.ffn_start)
    x = attention_block(x, layer, n_head)
    x = light_conv(x, layer)
    x = feed_forward(x, layer.ffn_end)
    return rms_norm(x, layer.final_norm)


def encode_mel(mel: np.ndarray, weights: AudioWeights) -> np.ndarray:
    """Log-mel [T, 128] → encoder output [n_real, d_model] (``Gemma3nAudioEncoder.last_hidden_state``)."""
    x = subsample(mel, weights.sscp)
    for layer in weights.layers:
        x = conformer_block(x, layer, weights.dims.n_head)
    return np.ascontiguousarray(x[:: spec.REDUCTION])


# ------------------------------------------------------------------ embedder


def embed_soft(encoded: np.ndarray, weights: AudioWeights) -> np.ndarray:
    """Encoder rows → language-model rows: soft norm, projection, weightless RMSNorm (no √d scaling)."""
    emb = weights.embedder
    return rms_norm(linear(rms_norm(encoded, emb.soft_norm), emb.projection))


def embed_hard(
    table: np.ndarray, hard_norm: np.ndarray, projection: np.ndarray, token_ids: Sequence[int]
) -> np.ndarray:
    """Rows of audio-vocabulary ids (262272..262399) through the embedder's hard path."""
    rows = np.asarray(token_ids) - spec.AUDIO_VOCAB_OFFSET
    if rows.min() < 0 or rows.max() >= table.shape[0]:
        raise ValueError(f"token ids {list(token_ids)} are outside the audio vocabulary")
    return rms_norm(linear(rms_norm(table[rows].astype(F32), hard_norm), projection)).astype(F32)
