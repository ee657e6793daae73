#!/usr/bin/env python3
"""Make the Hugging Face transformers reference for Gemma Desk's NumPy Gemma 3n audio tower.

``model_io.audio`` re-implements Gemma 3n's audio front end, USM conformer and
audio embedder in NumPy, reading the weights from an mmproj GGUF.  This tool
proves it against transformers (an independent implementation):

1. builds the synthetic audio mmproj presets (``model_io.synth.audio_tower``) with
   the project venv, reads them back with gguf-py and loads the *same* dequantised
   weights into ``Gemma3nAudioEncoder`` + ``Gemma3nMultimodalEmbedder`` (float32,
   CPU) through the converter's name mapping (inverted);
2. runs ``Gemma3nAudioFeatureExtractor`` and both modules on several clips: real
   speech synthesised with espeak-ng and decoded by ``model_io.audio.decode_audio``,
   an odd-length tone/chirp clip, a 0.3 s clip and a full 30 s clip;
3. runs llama.cpp's own converter (``convert_hf_to_gguf.py --mmproj``, with the
   one-line fix of gemma3n-audio.md §4.4 applied at run time) on an HF checkpoint of
   the same weights and records the tensor table and ``clip.audio.*`` keys it writes,
   so CI can check the synthetic writer against the converter without torch;
4. checks the extractor against published golden values and measures the NumPy
   tower (project venv) against the reference, recording everything in the sidecar.

``tests/test_audio_fidelity.py`` compares the NumPy tower with the stored outputs.

Run from the repository root in the reference venv (tools/requirements-reference.txt),
with espeak-ng installed (``apt-get install espeak-ng``)::

    /work/refvenv/bin/python tools/make_audio_reference.py

Step 3 needs llama.cpp's source tree as vendored in llama-cpp-python 0.3.36 (``--llama-cpp``; get it
with ``pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36`` and unpack
``vendor/llama.cpp``); the tests rely on its recorded output, so do not skip it for a committed reference.

GGUF -> transformers mapping: the table in :func:`hf_to_gguf_names` is llama.cpp's
converter mapping (``conversion/gemma.py`` ``Gemma3nVisionAudioModel`` +
gguf-py ``tensor_mapping.py``) written out; the tool verifies it against gguf-py's
``TensorNameMap`` (with the §4.4 fix) and by running the converter.  Shapes need no
transposes: gguf-py returns numpy order, which is torch's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from gguf import GGUFReader
from gguf.quants import dequantize
from transformers import Gemma3nAudioConfig, Gemma3nConfig, Gemma3nTextConfig
from transformers.models.gemma3n.feature_extraction_gemma3n import Gemma3nAudioFeatureExtractor
from transformers.models.gemma3n.modeling_gemma3n import Gemma3nAudioEncoder, Gemma3nMultimodalEmbedder

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT_DIR = REPO / "tests" / "data" / "reference"
STEM = "audio_gemma3n"
DEFAULT_LLAMA_CPP = Path("/tmp/src/llama_cpp_python-0.3.36/vendor/llama.cpp")

AUDIO_PAD_ID = 262_399
END_OF_AUDIO_ID = 262_272

# Presets -> inputs each is run on.  "tiny" is the test-suite preset; "tiny-q8" varies every shape
# the tower infers from the GGUF (width, depth, heads, SSCP channels, conv kernel) and stores Q8_0.
RUNS: dict[str, tuple[str, ...]] = {
    "tiny": ("speech", "odd", "short", "long"),
    "tiny-q8": ("speech", "odd"),
}
# Converter runs: preset -> --outtype values; f16 stands in for the full-size f16 presets' type policy.
CONVERTER_OUTTYPES: dict[str, tuple[str, ...]] = {"tiny": ("f32", "f16"), "tiny-q8": ("q8_0",)}
SYNTHETIC_OUTTYPE = {"tiny": "f32", "tiny-q8": "q8_0"}  # the outtype whose output the synthetic file mimics

SPEECH_TEXT = "Gemma Desk listens on this laptop. The quick brown fox jumps over the lazy dog, twice."
ESPEAK_ARGS = ("-v", "en-us", "-s", "165", "-p", "50")
STORE_MEL = ("speech", "odd", "short")  # the 30 s clip's mel is compared via the embeddings only

TOLERANCE = {
    "mel_max_abs": 1e-4,
    "embedding_cosine_min": 0.99999,
    "embedding_max_abs": 1e-3,
    "encoder_cosine_min": 0.99999,
    "encoder_rel_max_abs": 1e-3,  # max |numpy - ref| / max |ref| of the encoder output (before the embedder)
    "speech_wave_max_abs": 1e-6,  # espeak-ng at test time -> decode_audio vs the committed waveform
}
TOLERANCE_RATIONALE = (
    "Both sides compute in float32 on identical (dequantised) weights; the remaining differences are "
    "summation order (BLAS vs torch kernels, HF's 12-frame attention blocks vs the direct windows), "
    "measured at ~1e-6 relative (see 'measured'). The tolerances are the brief's: log-mel within 1e-4 "
    "of the extractor, embeddings cosine >= 0.99999 and max-abs <= 1e-3 (rows have RMS 1)."
)

# Golden values of the real google/gemma-3n-E2B-it extractor (gemma3n-audio.md section 1; Blaizzy/mlx-vlm).
GOLDEN = {
    "n_samples": 20_837,
    "shape": [128, 128],
    "stats": [-6.13652, 3.74858, -11.51293, 4.18331],  # mean, std, min, max
    "probe_index": [0, 777, 4321],
    "probe": [-2.2887, -2.72516, -8.1284],
    "atol": 2e-4,
}

PROJECT_HELPER = r"""
import json, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
import numpy as np
mode = sys.argv[1]
if mode == "build":
    from model_io.synth.audio_tower import audio_tensor_plan, write_audio_mmproj
    path = write_audio_mmproj(sys.argv[2], Path(sys.argv[3]))
    plan = [[t.name, list(t.shape), t.qtype.name] for t in audio_tensor_plan(sys.argv[2])]
    print(json.dumps({{"path": str(path), "plan": plan}}))
elif mode == "decode":
    from model_io.audio import decode_audio
    np.save(sys.argv[3], decode_audio(sys.argv[2]))
    print(json.dumps({{"ok": True}}))
elif mode == "measure":
    sys.path.insert(0, str(Path({repo!r}) / "tests"))
    from test_audio_fidelity import measure_reference
    print(json.dumps(measure_reference(Path(sys.argv[2]), Path(sys.argv[3]))))
"""


# --------------------------------------------------------------------------- helpers


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def project_call(python: str, *args: str) -> dict:
    code = PROJECT_HELPER.format(repo=str(REPO))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"project venv call {args[0]!r} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def key(preset: str) -> str:
    return preset.replace("-", "_")


# --------------------------------------------------------------------------- inputs


def espeak_version() -> str:
    proc = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def make_speech(python: str, work: Path) -> tuple[np.ndarray, dict]:
    """espeak-ng speech (22050 Hz WAV) decoded and resampled by the project's decode_audio."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is required (apt-get install espeak-ng)")
    wav = work / "speech.wav"
    subprocess.run(["espeak-ng", *ESPEAK_ARGS, "-w", str(wav), SPEECH_TEXT], check=True)
    out = work / "speech.npy"
    project_call(python, "decode", str(wav), str(out))
    wave = np.load(out).astype(np.float32)
    info = {
        "text": SPEECH_TEXT,
        "espeak_args": list(ESPEAK_ARGS),
        "espeak_version": espeak_version(),
        "wav_sha256": sha256_file(wav),
        "wav_bytes": wav.stat().st_size,
        "decoded_samples": int(wave.size),
    }
    return wave, info


def tone_clip(n: int, seed: int) -> np.ndarray:
    """Tones, a chirp and noise, quantised to int16 so the .npz stores it exactly."""
    t = np.arange(n, dtype=np.float64) / 16_000
    rng = np.random.default_rng(seed)
    wave = (
        0.3 * np.sin(2 * np.pi * 220 * t)
        + 0.2 * np.sin(2 * np.pi * (300 + 700 * t) * t)
        + 0.1 * np.sin(2 * np.pi * 3100 * t) * (t % 1.0 < 0.5)
        + 0.05 * rng.standard_normal(n)
    )
    return np.round(np.clip(wave, -1, 1) * 32767).astype(np.int16)


def long_clip(speech: np.ndarray) -> np.ndarray:
    """30 s: the speech repeated over a tone bed, int16."""
    reps = np.tile(speech, 480_000 // speech.size + 1)[:480_000].astype(np.float64)
    bed = tone_clip(480_000, seed=7).astype(np.float64) / 32767 * 0.3
    return np.round(np.clip(reps * 0.8 + bed, -1, 1) * 32767).astype(np.int16)


def golden_wave() -> np.ndarray:
    """The mlx-vlm golden-value input (gemma3n-audio.md section 1)."""
    t = np.arange(GOLDEN["n_samples"], dtype=np.float64) / 16_000
    return (
        0.4 * np.sin(2 * np.pi * 220 * t)
        + 0.2 * np.sin(2 * np.pi * (300 + 900 * t) * t)
        + 0.05 * np.sin(2 * np.pi * 3100 * t)
    ).astype(np.float32)


# --------------------------------------------------------------------------- GGUF -> HF


def hf_to_gguf_names(n_layer: int) -> dict[str, str]:
    """HF state-dict key (with model.audio_tower./model.embed_audio.) -> GGUF tensor name (converter)."""
    s = "model.audio_tower.subsample_conv_projection."
    names = {
        f"{s}conv_0.conv.weight": "a.conv1d.0.weight",
        f"{s}conv_0.norm.weight": "a.conv1d.0.norm.weight",
        f"{s}conv_1.conv.weight": "a.conv1d.1.weight",
        f"{s}conv_1.norm.weight": "a.conv1d.1.norm.weight",
        f"{s}input_proj_linear.weight": "a.pre_encode.out.weight",
        "model.embed_audio.embedding.weight": "mm.a.embedding.weight",
        "model.embed_audio.hard_embedding_norm.weight": "mm.a.hard_emb_norm.weight",
        "model.embed_audio.soft_embedding_norm.weight": "mm.a.soft_emb_norm.weight",
        "model.embed_audio.embedding_projection.weight": "mm.a.input_projection.weight",
    }
    block = {
        "ffw_layer_start.pre_layer_norm.weight": "ffn_norm.weight",
        "ffw_layer_start.ffw_layer_1.weight": "ffn_up.weight",
        "ffw_layer_start.ffw_layer_2.weight": "ffn_down.weight",
        "ffw_layer_start.post_layer_norm.weight": "ffn_post_norm.weight",
        "attention.pre_attn_norm.weight": "ln1.weight",
        "attention.attn.per_dim_scale": "per_dim_scale",
        "attention.attn.relative_position_embedding.pos_proj.weight": "linear_pos.weight",
        "attention.attn.q_proj.weight": "attn_q.weight",
        "attention.attn.k_proj.weight": "attn_k.weight",
        "attention.attn.v_proj.weight": "attn_v.weight",
        "attention.post.weight": "attn_out.weight",
        "attention.post_norm.weight": "ln2.weight",
        "lconv1d.pre_layer_norm.weight": "conv_norm.weight",
        "lconv1d.linear_start.weight": "conv_pw1.weight",
        "lconv1d.depthwise_conv1d.weight": "conv_dw.weight",
        "lconv1d.conv_norm.weight": "norm_conv.weight",
        "lconv1d.linear_end.weight": "conv_pw2.weight",
        "ffw_layer_end.pre_layer_norm.weight": "ffn_norm_1.weight",
        "ffw_layer_end.ffw_layer_1.weight": "ffn_up_1.weight",
        "ffw_layer_end.ffw_layer_2.weight": "ffn_down_1.weight",
        "ffw_layer_end.post_layer_norm.weight": "ffn_post_norm_1.weight",
        "norm.weight": "layer_pre_norm.weight",
    }
    for i in range(n_layer):
        for hf, gg in block.items():
            names[f"model.audio_tower.conformer.{i}.{hf}"] = f"a.blk.{i}.{gg}"
    return names


def read_gguf(path: Path) -> tuple[dict[str, np.ndarray], dict[str, dict], dict]:
    """Dequantised float32 tensors (numpy order), their stored type/ne, and the clip.* metadata."""
    reader = GGUFReader(path)
    arrays, info = {}, {}
    for t in reader.tensors:
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        values = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32).reshape(shape)
        arrays[t.name] = values
        info[t.name] = {"type": t.tensor_type.name, "ne": [int(x) for x in t.shape.tolist()]}
    meta = {}
    for name, field in reader.fields.items():
        if name.startswith(("clip.", "general.")) and not name.startswith("general.alignment"):
            value = field.contents()
            meta[name] = value.item() if isinstance(value, np.generic) else value
    return arrays, info, meta


def audio_config(meta: dict, arrays: dict[str, np.ndarray]) -> Gemma3nAudioConfig:
    """HF audio config with the shapes of the GGUF; everything not stored keeps HF's defaults."""
    n_layer = int(meta["clip.audio.block_count"])
    d = int(meta["clip.audio.embedding_length"])
    if arrays["a.pre_encode.out.weight"].shape[0] != d:
        raise SystemExit("clip.audio.embedding_length disagrees with a.pre_encode.out.weight")
    return Gemma3nAudioConfig(
        hidden_size=d,
        conf_num_attention_heads=int(meta["clip.audio.attention.head_count"]),
        conf_num_hidden_layers=n_layer,
        sscp_conv_channel_size=(
            arrays["a.conv1d.0.weight"].shape[0],
            arrays["a.conv1d.1.weight"].shape[0],
        ),
        conf_conv_kernel_size=arrays["a.blk.0.conv_dw.weight"].shape[-1],
    )


class Reference:
    """Gemma3nAudioEncoder + Gemma3nMultimodalEmbedder holding one GGUF's weights."""

    def __init__(self, gguf_path: Path) -> None:
        arrays, self.tensor_info, self.meta = read_gguf(gguf_path)
        self.audio_cfg = audio_config(self.meta, arrays)
        n_text = int(self.meta["clip.audio.projection_dim"])
        self.text_cfg = Gemma3nTextConfig(hidden_size=n_text)
        torch.manual_seed(0)
        self.encoder = Gemma3nAudioEncoder(self.audio_cfg).to(torch.float32).eval()
        self.embedder = Gemma3nMultimodalEmbedder(self.audio_cfg, self.text_cfg).to(torch.float32).eval()
        self.names = hf_to_gguf_names(self.audio_cfg.conf_num_hidden_layers)
        self.state = self._load(arrays)
        self.extractor = Gemma3nAudioFeatureExtractor()

    def _load(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        state = {hf: torch.from_numpy(arrays[gg].copy()) for hf, gg in self.names.items()}
        unused = set(arrays) - set(self.names.values())
        if unused:
            raise SystemExit(f"GGUF tensors with no HF counterpart: {sorted(unused)}")
        for module, prefix in ((self.encoder, "model.audio_tower."), (self.embedder, "model.embed_audio.")):
            sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            result = module.load_state_dict(sub, strict=True)
            if result.missing_keys or result.unexpected_keys:
                raise SystemExit(f"strict load failed: {result}")
            for name, value in module.state_dict().items():
                if not torch.equal(value, sub[name]):
                    raise SystemExit(f"{prefix}{name}: loaded value differs from the GGUF")
        return state

    def features(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.extractor([wave], return_tensors="np")
        return out["input_features"][0].astype(np.float32), out["input_features_mask"][0]

    @torch.no_grad()
    def run(self, wave: np.ndarray) -> dict[str, np.ndarray]:
        mel, mask = self.features(wave)
        if not mask.all():
            raise SystemExit("a single clip should have no padded mel frames")
        enc = self.encoder(
            torch.from_numpy(mel)[None], torch.from_numpy(~mask)[None], return_dict=True
        ).last_hidden_state
        emb = self.embedder(inputs_embeds=enc)
        return {"mel": mel, "encoder": enc[0].numpy(), "embedding": emb[0].numpy()}

    @torch.no_grad()
    def hard_rows(self) -> np.ndarray:
        ids = torch.tensor([[AUDIO_PAD_ID, END_OF_AUDIO_ID]])
        return self.embedder(input_ids=ids)[0].numpy()


# --------------------------------------------------------------------------- the converter


CONVERTER_WRAPPER = r"""
import runpy, sys
llama_cpp = sys.argv[1]
sys.path.insert(0, llama_cpp + "/gguf-py")
sys.path.insert(0, llama_cpp)
import gguf
from gguf.tensor_mapping import TensorNameMap
# gemma3n-audio.md section 4.4: map the SSCP group norms like Gemma 4's
cfg = TensorNameMap.block_mappings_cfg
cfg[gguf.MODEL_TENSOR.A_ENC_CONV1D_NORM] = (
    *cfg[gguf.MODEL_TENSOR.A_ENC_CONV1D_NORM], "model.audio_tower.subsample_conv_projection.conv_{bid}.norm"
)
sys.argv = [llama_cpp + "/convert_hf_to_gguf.py", *sys.argv[2:]]
runpy.run_path(llama_cpp + "/convert_hf_to_gguf.py", run_name="__main__")
"""


def check_name_map(llama_cpp: Path, names: dict[str, str]) -> dict:
    """gguf-py's TensorNameMap (vendored, with the fix) must map every HF name as hf_to_gguf_names does."""
    code = r"""
import json, sys
sys.path.insert(0, sys.argv[1] + "/gguf-py")
import gguf
from gguf.tensor_mapping import TensorNameMap
cfg = TensorNameMap.block_mappings_cfg
fix = "model.audio_tower.subsample_conv_projection.conv_{bid}.norm"
names = json.loads(sys.stdin.read())
out = {}
for fixed in (False, True):
    if fixed:
        cfg[gguf.MODEL_TENSOR.A_ENC_CONV1D_NORM] = (*cfg[gguf.MODEL_TENSOR.A_ENC_CONV1D_NORM], fix)
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, 128)
    got = {}
    for hf in names:
        n = hf.replace("model.audio_tower.conformer.", "conformer.layers.")
        got[hf] = tmap.get_name(n, try_suffixes=(".weight",))
    out["fixed" if fixed else "stock"] = got
print(json.dumps(out))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code, str(llama_cpp)], input=json.dumps(names), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"name-map check failed:\n{proc.stderr[-3000:]}")
    got = json.loads(proc.stdout)
    mismatches = {hf: got["fixed"][hf] for hf, gg in names.items() if got["fixed"][hf] != gg}
    if mismatches:
        raise SystemExit(f"hf_to_gguf_names disagrees with gguf-py's TensorNameMap: {mismatches}")
    unmapped_stock = sorted(hf for hf, v in got["stock"].items() if v is None)
    return {"all_names_match_tensor_name_map_with_fix": True, "unmapped_without_fix": unmapped_stock}


def save_hf_checkpoint(ref: Reference, out_dir: Path) -> None:
    """config.json + model.safetensors holding only the audio tower and embedder (no vision tensors)."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    text = Gemma3nTextConfig(
        hidden_size=ref.text_cfg.hidden_size,
        num_hidden_layers=2,
        num_kv_shared_layers=0,
        layer_types=["sliding_attention", "full_attention"],
        activation_sparsity_pattern=[0.0, 0.0],
        intermediate_size=4 * ref.text_cfg.hidden_size,
    )
    config = Gemma3nConfig(text_config=text.to_dict(), audio_config=ref.audio_cfg.to_dict())
    config.architectures = ["Gemma3nForConditionalGeneration"]
    config.save_pretrained(out_dir)
    save_file({k: v.contiguous() for k, v in ref.state.items()}, str(out_dir / "model.safetensors"))


def run_converter(llama_cpp: Path, hf_dir: Path, outtype: str, out_file: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CONVERTER_WRAPPER,
            str(llama_cpp),
            str(hf_dir),
            "--mmproj",
            "--outtype",
            outtype,
            "--outfile",
            str(out_file),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not out_file.exists():
        raise SystemExit(f"convert_hf_to_gguf.py --outtype {outtype} failed:\n{proc.stderr[-4000:]}")


def converter_check(llama_cpp: Path, ref: Reference, preset: str, synthetic: Path, work: Path) -> dict:
    """Convert the reference weights with llama.cpp; record its output and compare with the synthetic file."""
    hf_dir = work / f"hf-{preset}"
    save_hf_checkpoint(ref, hf_dir)
    synth_arrays, synth_info, _ = read_gguf(synthetic)
    result: dict = {}
    for outtype in CONVERTER_OUTTYPES[preset]:
        out = work / f"converted-{preset}-{outtype}.gguf"
        run_converter(llama_cpp, hf_dir, outtype, out)
        arrays, info, meta = read_gguf(out)
        audio_info = {n: v for n, v in info.items() if n.startswith(("a.", "mm.a."))}
        entry = {
            "tensors": audio_info,
            "clip_audio_metadata": {k: v for k, v in meta.items() if k.startswith("clip.audio.")}
            | {"clip.has_audio_encoder": meta.get("clip.has_audio_encoder")},
            "general": {
                k: v
                for k, v in meta.items()
                if k in ("general.architecture", "general.type", "general.file_type")
            },
            "non_audio_tensors": sorted(set(info) - set(audio_info)),
        }
        if outtype == SYNTHETIC_OUTTYPE[preset]:
            entry["same_table_as_synthetic"] = audio_info == synth_info
            entry["max_abs_value_diff_vs_synthetic"] = max(
                float(np.abs(arrays[n] - synth_arrays[n]).max()) for n in audio_info
            )
        result[outtype] = entry
    return result


# --------------------------------------------------------------------------- main


def cosine_rows(a: np.ndarray, b: np.ndarray) -> float:
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return float((num / den).min())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project-python", default=str(REPO / ".venv" / "bin" / "python"))
    parser.add_argument(
        "--llama-cpp", type=Path, default=DEFAULT_LLAMA_CPP, help="llama.cpp source (converter)"
    )
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-converter", action="store_true", help="skip running llama.cpp's converter")
    parser.add_argument("--no-measure", action="store_true", help="skip measuring the NumPy tower")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.time()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        speech, speech_info = make_speech(args.project_python, work)
        waves_f32 = {
            "speech": speech,
            "odd": tone_clip(37_531, seed=1).astype(np.float32) / np.float32(32768),
            "short": tone_clip(5_003, seed=2).astype(np.float32) / np.float32(32768),
            "long": long_clip(speech).astype(np.float32) / np.float32(32768),
        }
        arrays: dict[str, np.ndarray] = {
            "wave_speech": speech,
            "wave_odd_i16": tone_clip(37_531, seed=1),
            "wave_short_i16": tone_clip(5_003, seed=2),
            "wave_long_i16": long_clip(speech),
        }
        sidecar: dict = {
            "description": "transformers Gemma3nAudioFeatureExtractor + Gemma3nAudioEncoder + "
            "Gemma3nMultimodalEmbedder reference for the synthetic audio mmproj presets, compared with "
            "model_io.audio by tests/test_audio_fidelity.py. Regenerate: "
            "/work/refvenv/bin/python tools/make_audio_reference.py",
            "inputs": {
                "speech": speech_info | {"stored_as": "wave_speech float32 (decode_audio output)"},
                "odd": {"samples": 37_531, "stored_as": "wave_odd_i16 / 32768"},
                "short": {"samples": 5_003, "stored_as": "wave_short_i16 / 32768"},
                "long": {"samples": 480_000, "stored_as": "wave_long_i16 / 32768"},
            },
            "presets": {},
            "tolerance": TOLERANCE,
            "tolerance_rationale": TOLERANCE_RATIONALE,
        }

        extractor = Gemma3nAudioFeatureExtractor()
        for name in STORE_MEL:
            arrays[f"mel_{name}"] = extractor([waves_f32[name]], return_tensors="np")["input_features"][0]
        golden = extractor([golden_wave()], return_tensors="np")["input_features"][0]
        sidecar["golden_extractor_check"] = {
            "golden": GOLDEN,
            "transformers_stats": [
                float(golden.mean()),
                float(golden.std()),
                float(golden.min()),
                float(golden.max()),
            ],
            "transformers_probe": [float(golden.reshape(-1)[i]) for i in GOLDEN["probe_index"]],
        }

        for preset, inputs in RUNS.items():
            built = project_call(args.project_python, "build", preset, str(work / f"{preset}.gguf"))
            gguf_path = Path(built["path"])
            ref = Reference(gguf_path)
            entry: dict = {
                "gguf_sha256": sha256_file(gguf_path),
                "gguf_bytes": gguf_path.stat().st_size,
                "hf_audio_config": ref.audio_cfg.to_dict(),
                "text_hidden_size": ref.text_cfg.hidden_size,
                "inputs": list(inputs),
                "n_real_tokens": {},
            }
            rows = ref.hard_rows()
            arrays[f"{key(preset)}_pad_row"], arrays[f"{key(preset)}_end_of_audio_row"] = rows[0], rows[1]
            for name in inputs:
                out = ref.run(waves_f32[name])
                if name in STORE_MEL and not np.array_equal(out["mel"], arrays[f"mel_{name}"]):
                    raise SystemExit("the extractor is not deterministic")
                arrays[f"{key(preset)}_{name}_encoder"] = out["encoder"]
                arrays[f"{key(preset)}_{name}_embedding"] = out["embedding"]
                entry["n_real_tokens"][name] = int(out["embedding"].shape[0])
            if preset == "tiny":
                sidecar["name_map_check"] = check_name_map(args.llama_cpp, ref.names)
            if not args.no_converter:
                entry["converter"] = converter_check(args.llama_cpp, ref, preset, gguf_path, work)
            sidecar["presets"][preset] = entry
            print(f"{preset}: reference done ({time.time() - t_start:.1f}s)", file=sys.stderr)

        sidecar["versions"] = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
            "llama_cpp_converter": str(args.llama_cpp),
        }
        args.out_dir.mkdir(parents=True, exist_ok=True)
        npz_path = args.out_dir / f"{STEM}.npz"
        json_path = args.out_dir / f"{STEM}.json"
        np.savez_compressed(npz_path, **arrays)
        json_path.write_text(json.dumps(sidecar, indent=2, default=_json_default) + "\n")
        if not args.no_measure:
            sidecar["measured"] = project_call(args.project_python, "measure", str(npz_path), str(json_path))
            json_path.write_text(json.dumps(sidecar, indent=2, default=_json_default) + "\n")
    print(
        f"wrote {npz_path} ({npz_path.stat().st_size} bytes) and {json_path} in {time.time() - t_start:.0f}s",
        file=sys.stderr,
    )
    return 0


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


if __name__ == "__main__":
    sys.exit(main())
