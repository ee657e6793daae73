"""The NumPy audio tower computes what transformers computes, on the same synthetic weights.

``tools/make_audio_reference.py`` (run once in a torch venv) loaded the synthetic
``tiny`` and ``tiny-q8`` audio mmproj presets into transformers'
``Gemma3nAudioFeatureExtractor`` / ``Gemma3nAudioEncoder`` / ``Gemma3nMultimodalEmbedder``
and stored their outputs for espeak-ng speech, an odd-length tone clip, a 0.3 s clip and
a 30 s clip in ``tests/data/reference/audio_gemma3n.{npz,json}``.  It also ran llama.cpp's
converter on an HF checkpoint of the same weights and recorded the tensor table and
``clip.audio.*`` keys it writes.  Here, without torch: the log-mel features, the encoder
output, the embedder rows and the hard-embedding rows must match; the synthetic
writer must match the converter's layout; and espeak-ng (a system package CI
installs) must still produce the committed speech.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tempfile
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf_fixtures import sha256_file

from model_io.audio import AudioTower, decode_audio, log_mel, n_audio_tokens
from model_io.gguf_check import validate_gguf
from model_io.synth.audio_tower import AUDIO_PRESETS, audio_tensor_plan, write_audio_mmproj

REFERENCE_DIR = Path(__file__).parent / "data" / "reference"
STEM = "audio_gemma3n"
REGENERATE = (
    "/work/refvenv/bin/python tools/make_audio_reference.py  (needs espeak-ng and the reference venv)"
)
PRESETS = ("tiny", "tiny-q8")
SYNTHETIC_OUTTYPE = {"tiny": "f32", "tiny-q8": "q8_0"}


@cache
def _reference(
    npz_path: Path = REFERENCE_DIR / f"{STEM}.npz", json_path: Path = REFERENCE_DIR / f"{STEM}.json"
):
    sidecar = json.loads(json_path.read_text())
    with np.load(npz_path) as data:
        arrays = {k: data[k] for k in data.files}
    return sidecar, arrays


def waveform(arrays: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The reference inputs: speech as stored (float32), the others int16 / 32768 (exact in float32)."""
    if f"wave_{name}" in arrays:
        return arrays[f"wave_{name}"].astype(np.float32)
    return arrays[f"wave_{name}_i16"].astype(np.float32) / np.float32(32768)


def _key(preset: str) -> str:
    return preset.replace("-", "_")


def cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    num = (a.astype(np.float64) * b).sum(-1)
    den = np.linalg.norm(a.astype(np.float64), axis=-1) * np.linalg.norm(b.astype(np.float64), axis=-1)
    return float((num / den).min())


def compare(got: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    return {
        "cosine_min": cosine_min(got, ref),
        "max_abs": float(np.abs(got - ref).max()),
        "rel_max_abs": float(np.abs(got - ref).max() / np.abs(ref).max()),
    }


def measure_reference(npz_path: Path, json_path: Path) -> dict:
    """Every number the tests check, for the tool's sidecar (run in the project venv)."""
    sidecar, arrays = _reference(npz_path, json_path)
    out: dict = {"mel_max_abs": {}}
    for name in ("speech", "odd", "short"):
        out["mel_max_abs"][name] = float(
            np.abs(log_mel(waveform(arrays, name)) - arrays[f"mel_{name}"]).max()
        )
    with tempfile.TemporaryDirectory() as tmp:
        for preset in PRESETS:
            tower = AudioTower(write_audio_mmproj(preset, Path(tmp) / f"{preset}.gguf"))
            tower.load()
            k = _key(preset)
            result: dict = {}
            for name in sidecar["presets"][preset]["inputs"]:
                wave = waveform(arrays, name)
                start = time.perf_counter()
                emb = tower.embed(wave)
                seconds = time.perf_counter() - start
                result[name] = {
                    "encoder": compare(tower.encode(wave), arrays[f"{k}_{name}_encoder"]),
                    "embedding": compare(emb, arrays[f"{k}_{name}_embedding"]),
                    "embed_seconds": round(seconds, 4),
                }
            pad, end = tower.special_rows()
            result["pad_row"] = compare(pad[None], arrays[f"{k}_pad_row"][None])
            result["end_of_audio_row"] = compare(end[None], arrays[f"{k}_end_of_audio_row"][None])
            out[preset] = result
    return out


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def reference():
    return _reference()


@pytest.fixture(scope="module")
def towers(reference, tmp_path_factory) -> dict[str, AudioTower]:
    """The synthetic presets, rebuilt and checked to be the bytes the reference was made from."""
    sidecar, _ = reference
    out_dir = tmp_path_factory.mktemp("audio-mmproj")
    result = {}
    for preset in PRESETS:
        path = write_audio_mmproj(preset, out_dir / f"{preset}.gguf")
        want = sidecar["presets"][preset]["gguf_sha256"]
        if sha256_file(path) != want:
            pytest.fail(
                f"the synthetic {preset!r} audio mmproj changed (the reference was made from sha256 {want}); "
                f"if the writer change is intended, regenerate tests/data/reference/{STEM}.*: {REGENERATE}"
            )
        result[preset] = AudioTower(path)
    return result


CASES = [
    ("tiny", "speech"),
    ("tiny", "odd"),
    ("tiny", "short"),
    ("tiny", "long"),
    ("tiny-q8", "speech"),
    ("tiny-q8", "odd"),
]


def test_reference_covers_every_case(reference):
    sidecar, _ = reference
    assert [(p, n) for p in PRESETS for n in sidecar["presets"][p]["inputs"]] == CASES


# --------------------------------------------------------------------------- front end


@pytest.mark.parametrize("name", ["speech", "odd", "short"])
def test_log_mel_matches_the_hf_extractor(reference, name):
    sidecar, arrays = reference
    got, ref = log_mel(waveform(arrays, name)), arrays[f"mel_{name}"]
    assert got.shape == ref.shape and got.dtype == np.float32
    assert float(np.abs(got - ref).max()) <= sidecar["tolerance"]["mel_max_abs"]


def test_log_mel_matches_the_published_golden_values(reference):
    """The real google/gemma-3n-E2B-it extractor's statistics (gemma3n-audio.md §1)."""
    sidecar, _ = reference
    golden = sidecar["golden_extractor_check"]["golden"]
    t = np.arange(golden["n_samples"], dtype=np.float64) / 16_000
    wave = (
        0.4 * np.sin(2 * np.pi * 220 * t)
        + 0.2 * np.sin(2 * np.pi * (300 + 900 * t) * t)
        + 0.05 * np.sin(2 * np.pi * 3100 * t)
    ).astype(np.float32)
    mel = log_mel(wave)
    assert list(mel.shape) == golden["shape"]
    stats = [mel.mean(), mel.std(), mel.min(), mel.max()]
    np.testing.assert_allclose(stats, golden["stats"], atol=golden["atol"])
    probe = [mel.reshape(-1)[i] for i in golden["probe_index"]]
    np.testing.assert_allclose(probe, golden["probe"], atol=golden["atol"])


# --------------------------------------------------------------------------- tower and embedder


@pytest.mark.parametrize(("preset", "name"), CASES)
def test_tower_matches_transformers(reference, towers, preset, name):
    sidecar, arrays = reference
    tol = sidecar["tolerance"]
    wave = waveform(arrays, name)
    tower = towers[preset]
    k = _key(preset)
    ref_enc, ref_emb = arrays[f"{k}_{name}_encoder"], arrays[f"{k}_{name}_embedding"]
    assert ref_emb.shape[0] == n_audio_tokens(len(wave)) == sidecar["presets"][preset]["n_real_tokens"][name]

    enc = compare(tower.encode(wave), ref_enc)
    assert enc["cosine_min"] >= tol["encoder_cosine_min"], enc
    assert enc["rel_max_abs"] <= tol["encoder_rel_max_abs"], enc

    emb = tower.embed(wave)
    assert emb.shape == ref_emb.shape and emb.dtype == np.float32
    got = compare(emb, ref_emb)
    assert got["cosine_min"] >= tol["embedding_cosine_min"], got
    assert got["max_abs"] <= tol["embedding_max_abs"], got


@pytest.mark.parametrize("preset", PRESETS)
def test_hard_embedding_rows_match_transformers(reference, towers, preset):
    sidecar, arrays = reference
    tol = sidecar["tolerance"]["embedding_max_abs"]
    pad, end = towers[preset].special_rows()
    k = _key(preset)
    assert float(np.abs(pad - arrays[f"{k}_pad_row"]).max()) <= tol
    assert float(np.abs(end - arrays[f"{k}_end_of_audio_row"]).max()) <= tol


def test_clip_rows_are_real_then_padding_then_end_of_audio(reference, towers):
    _, arrays = reference
    wave = waveform(arrays, "speech")
    rows = towers["tiny"].clip_rows(wave)
    n_real = n_audio_tokens(len(wave))
    assert rows.shape == (189, 64)
    np.testing.assert_allclose(rows[:n_real], arrays["tiny_speech_embedding"], atol=1e-3)
    np.testing.assert_allclose(
        rows[n_real:188], np.broadcast_to(arrays["tiny_pad_row"], (188 - n_real, 64)), atol=1e-3
    )
    np.testing.assert_allclose(rows[188], arrays["tiny_end_of_audio_row"], atol=1e-3)


# --------------------------------------------------------------------------- writer vs converter


def _plan_table(preset) -> dict[str, dict]:
    return {t.name: {"type": t.qtype.name, "ne": list(t.shape)} for t in audio_tensor_plan(preset)}


@pytest.mark.parametrize("preset", PRESETS)
def test_synthetic_tensors_are_what_the_converter_writes(reference, preset):
    """Names, ggml shapes and storage types, for the outtype each preset mimics and for f16."""
    sidecar, _ = reference
    converter = sidecar["presets"][preset]["converter"]
    assert _plan_table(preset) == converter[SYNTHETIC_OUTTYPE[preset]]["tensors"]
    assert converter[SYNTHETIC_OUTTYPE[preset]]["same_table_as_synthetic"] is True
    if "f16" in converter:  # the full-size presets' type policy, checked on the tiny shapes
        as_f16 = dataclasses.replace(AUDIO_PRESETS[preset], matrix_type=GGMLQuantizationType.F16)
        assert _plan_table(as_f16) == converter["f16"]["tensors"]


@pytest.mark.parametrize("preset", PRESETS)
def test_synthetic_metadata_is_what_the_converter_writes(reference, towers, preset):
    sidecar, _ = reference
    converter = sidecar["presets"][preset]["converter"][SYNTHETIC_OUTTYPE[preset]]
    kv = validate_gguf(towers[preset].path, expect="mmproj").kv
    ours = {k: v for k, v in kv.items() if k.startswith("clip.audio.")} | {
        "clip.has_audio_encoder": kv["clip.has_audio_encoder"]
    }
    assert ours.keys() == converter["clip_audio_metadata"].keys()
    for name, value in converter["clip_audio_metadata"].items():
        assert ours[name] == pytest.approx(value), name
    assert kv["general.file_type"] == converter["general"]["general.file_type"]
    assert kv["general.type"] == converter["general"]["general.type"] == "mmproj"


def test_converter_drops_the_sscp_norms_without_the_fix(reference):
    """Documents the converter gap the synthetic names rely on (gemma3n-audio.md §4.4)."""
    sidecar, _ = reference
    check = sidecar["name_map_check"]
    assert check["all_names_match_tensor_name_map_with_fix"] is True
    assert check["unmapped_without_fix"] == [
        "model.audio_tower.subsample_conv_projection.conv_0.norm.weight",
        "model.audio_tower.subsample_conv_projection.conv_1.norm.weight",
    ]


# --------------------------------------------------------------------------- real speech at test time


def test_espeak_ng_speech_decodes_to_the_committed_waveform(reference, tmp_path):
    """espeak-ng (system package) → WAV at 22.05 kHz → decode_audio: the fidelity test's speech input."""
    sidecar, arrays = reference
    info = sidecar["inputs"]["speech"]
    espeak = shutil.which("espeak-ng")
    assert espeak is not None, "espeak-ng is required for this test: apt-get install espeak-ng"
    wav = tmp_path / "speech.wav"
    subprocess.run([espeak, *info["espeak_args"], "-w", str(wav), info["text"]], check=True)
    version = subprocess.run([espeak, "--version"], capture_output=True, text=True).stdout.strip()
    wave = decode_audio(wav)
    ref = arrays["wave_speech"]
    assert wave.shape == ref.shape, (
        f"espeak-ng {version!r} differs from the reference's {info['espeak_version']!r}"
    )
    assert float(np.abs(wave - ref).max()) <= sidecar["tolerance"]["speech_wave_max_abs"], (
        f"espeak-ng {version!r} vs reference {info['espeak_version']!r}"
    )
