#!/usr/bin/env python3
"""Make the Hugging Face transformers + timm reference for the synthetic Gemma 3n vision mmproj.

``model_io.synth.vision_tower`` writes a random-weight MobileNet-V5 mmproj that
llama.cpp's mtmd runs in the tests.  This tool proves the tower is faithful to the
architecture: it loads the *same* weights into timm's ``MobileNetV5Encoder`` (the
implementation transformers' ``Gemma3nVisionConfig`` wraps through
``TimmWrapperModel``) and transformers' ``Gemma3nMultimodalEmbedder``, runs
transformers' own ``Gemma3nModel.get_image_features`` on two images, and stores the
soft-token embeddings that ``tests/test_vision_reference.py`` compares llama.cpp
against (CI never installs torch).  It also stores the embedder's hard-token
embedding of ``<end_of_image>`` (id 262144), which HF feeds where llama.cpp feeds the
text table's row (see ``model_io/vision.py``).

Run it in the reference venv (tools/requirements-reference.txt) from the repository
root.  timm needs torchvision, whose PyPI wheel is a CUDA build that does not load
next to the CPU torch there, so timm is *not* installed: pass its wheel (pure
Python) and the tool imports it from the zip with a stub ``torchvision`` (MobileNet-V5
uses no torchvision code)::

    /work/refvenv/bin/pip download timm==1.0.31 --no-deps -d /tmp/timm
    /work/refvenv/bin/python tools/make_vision_reference.py --timm /tmp/timm/timm-1.0.31-py3-none-any.whl

The project venv's Python (``--project-python``) builds the mmproj with
``cached_vision_mmproj("tiny")`` and, unless ``--no-measure``, encodes the stored
images with llama.cpp so the measured differences land in the JSON sidecar.

GGUF -> timm/transformers mapping (the inverse of the converter's
``Gemma3nVisionAudioModel``): ``v.blk.S.I.*`` -> ``blocks.S.I.*``, ``v.conv_stem.*``
-> ``conv_stem.*``, ``v.msfa.*`` -> ``msfa.*``; ``conv_stem.conv.bias`` and
``layer_scale.gamma`` were unsqueezed to [1, C, 1, 1] and are squeezed back;
``mm.embedding`` / ``mm.hard_emb_norm`` / ``mm.soft_emb_norm`` /
``mm.input_projection`` -> ``embed_vision.embedding`` / ``hard_embedding_norm`` /
``soft_embedding_norm`` / ``embedding_projection``.  The load is strict, so every
tensor the synthetic writer emits must be exactly a timm parameter and vice versa.
The one deviation from stock timm: ``MobileNetV5Encoder`` hard-codes a 2048-wide
fusion adapter, so the tiny tower's adapter is rebuilt 64 wide with timm's own class.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.abc
import importlib.machinery
import json
import subprocess
import sys
import tempfile
import types
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "reference"
END_OF_IMAGE = 262144
IMAGE_SIZE = 768


def reference_images() -> dict[str, np.ndarray]:
    """Two 768x768 RGB images (exact tower input: no resize on either side), cheap to compress."""
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    checker = ((x // 48 + y // 48) % 2) * 160 + 40
    disc = (x - 300) ** 2 + (y - 420) ** 2 < 150**2
    first = np.stack([x * 255 // (IMAGE_SIZE - 1), y * 255 // (IMAGE_SIZE - 1), checker], axis=2)
    first[disc] = (230, 30, 30)
    blocks = ((x // 24) * 37 + (y // 24) * 91) % 256
    second = np.stack([checker, 255 - x * 255 // (IMAGE_SIZE - 1), blocks], axis=2)
    y, x = np.mgrid[0:300, 0:500]
    third = np.stack([x * 255 // 499, (x // 25 + y // 25) % 2 * 200 + 20, y * 255 // 299], axis=2)
    return {
        "image_a": first.astype(np.uint8),
        "image_b": second.astype(np.uint8),
        "image_c": third.astype(np.uint8),
    }


def hf_preprocess(pixels: np.ndarray) -> np.ndarray:
    """transformers' PIL SigLIP processor with Gemma 3n's settings, back to uint8 HWC (values are k/255)."""
    from transformers.image_utils import PILImageResampling
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    processor = SiglipImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        resample=PILImageResampling.BILINEAR,
        do_normalize=False,
        do_rescale=True,
        rescale_factor=1 / 255,
    )
    chw = processor(images=pixels, return_tensors="np")["pixel_values"][0]
    return np.round(np.transpose(chw, (1, 2, 0)) * 255).astype(np.uint8)


# -- timm without torchvision ------------------------------------------------------------------------


class _Anything(type):
    """A placeholder class whose attributes are distinct, stable placeholders (``InterpolationMode.X``)."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        children = cls.__dict__["_children"]
        if name not in children:
            children[name] = _Anything(f"{cls.__name__}.{name}", (), {"_children": {}})
        return children[name]


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Fabricates ``torchvision`` and its submodules; any attribute is an inert placeholder class."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__path__ = []
        root = _Anything(spec.name, (), {"_children": {}})
        module.__getattr__ = lambda attr: getattr(root, attr)  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def import_timm(wheel: Path | None, project_site: Path) -> Any:
    """timm from its wheel, torchvision stubbed, Pillow borrowed from the project venv (same CPython 3.11)."""
    if wheel is not None:
        sys.path.insert(0, str(wheel))
    borrowed = Path(tempfile.mkdtemp(prefix="pillow-"))
    for name in ("PIL", "pillow.libs"):
        if (project_site / name).exists():
            (borrowed / name).symlink_to(project_site / name)
    sys.path.append(str(borrowed))  # appended: it never shadows the reference venv's own packages
    import transformers.models.timm_wrapper.modeling_timm_wrapper as wrapper_module
    import transformers.utils.import_utils as availability

    # transformers decides what is installed when first imported (torchvision: no, hence timm: no); only
    # then is the stub installed, for timm's own import-time references.  TimmWrapperModel runs unchanged
    # apart from its backend check and its module-level ``timm`` name.
    assert not availability.is_torchvision_available()
    sys.meta_path.insert(0, _StubFinder())
    import timm

    wrapper_module.timm = timm
    wrapper_module.requires_backends = lambda *_args, **_kwargs: None
    return timm


# -- models ---------------------------------------------------------------------------------------------


def build_tower(timm: Any, arch_def: list[list[str]], stem: int, hidden: int) -> Any:
    """timm's MobileNet-V5 encoder with the preset's blocks, inside transformers' TimmWrapperModel."""
    import torch.nn as nn
    from timm.layers import RmsNorm2d
    from timm.models._efficientnet_builder import decode_arch_def, round_channels
    from timm.models.mobilenetv5 import MobileNetV5MultiScaleFusionAdapter
    from transformers import Gemma3nVisionConfig, TimmWrapperModel

    gelu = partial(nn.GELU, approximate="tanh")
    config = Gemma3nVisionConfig(
        hidden_size=hidden,
        model_args={
            "block_args": decode_arch_def(arch_def),
            "stem_size": stem,
            "round_chs_fn": partial(round_channels, multiplier=1.0),
            "norm_layer": RmsNorm2d,
            "act_layer": gelu,
            "layer_scale_init_value": 1e-5,
        },
    )
    wrapper = TimmWrapperModel(config)
    encoder = wrapper.timm_model
    assert type(encoder).__name__ == "MobileNetV5Encoder", type(encoder)
    encoder.msfa = MobileNetV5MultiScaleFusionAdapter(
        in_chs=encoder.msfa_in_chs, out_chs=hidden, output_resolution=16, norm_layer=RmsNorm2d, act_layer=gelu
    )
    encoder.num_features = hidden
    return wrapper.eval()


def build_embedder(hidden: int, text_n_embd: int) -> Any:
    from transformers import Gemma3nTextConfig, Gemma3nVisionConfig
    from transformers.models.gemma3n.modeling_gemma3n import Gemma3nMultimodalEmbedder

    text = Gemma3nTextConfig(hidden_size=text_n_embd)
    return Gemma3nMultimodalEmbedder(Gemma3nVisionConfig(hidden_size=hidden), text).eval()


def gguf_state(path: Path) -> dict[str, np.ndarray]:
    """Every mmproj tensor as float32 in torch layout, renamed to timm / transformers keys."""
    from gguf import GGUFReader

    state = {}
    for tensor in GGUFReader(path).tensors:
        data = np.array(tensor.data, dtype=np.float32).reshape([int(n) for n in reversed(tensor.shape)])
        name = tensor.name
        if name.endswith(("conv_stem.conv.bias", "layer_scale.gamma")):
            data = data.reshape(-1)
        state[_torch_name(name)] = data
    return state


def _torch_name(name: str) -> str:
    if name.startswith("v.blk."):
        return "timm_model.blocks." + name[len("v.blk.") :]
    if name.startswith("v."):
        return "timm_model." + name[len("v.") :]
    embedder = {
        "mm.embedding.weight": "embedding.weight",
        "mm.hard_emb_norm.weight": "hard_embedding_norm.weight",
        "mm.soft_emb_norm.weight": "soft_embedding_norm.weight",
        "mm.input_projection.weight": "embedding_projection.weight",
    }
    return "embed_vision." + embedder[name]


def load_weights(tower: Any, embedder: Any, state: dict[str, np.ndarray]) -> None:
    import torch

    def pick(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: torch.from_numpy(v) for k, v in state.items() if k.startswith(prefix)}

    tower_state = {k: v for k, v in pick("").items() if k.startswith("timm_model.")}
    assert len(tower_state) + len(pick("embed_vision.")) == len(state)
    missing, unexpected = tower.load_state_dict(tower_state, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    missing, unexpected = embedder.load_state_dict(pick("embed_vision."), strict=False)
    assert not unexpected and set(missing) <= {"embedding_post_projection_norm.weight"}, (missing, unexpected)


def image_features(tower: Any, embedder: Any, hidden: int, pixels: np.ndarray) -> np.ndarray:
    """transformers' ``Gemma3nModel.get_image_features`` on one HWC uint8 image already at 768x768."""
    import torch
    from transformers.models.gemma3n.modeling_gemma3n import Gemma3nModel

    owner = types.SimpleNamespace(
        vision_tower=tower,
        embed_vision=embedder,
        config=types.SimpleNamespace(
            vision_config=types.SimpleNamespace(hidden_size=hidden), vision_soft_tokens_per_image=256
        ),
    )
    tensor = torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        out = Gemma3nModel.get_image_features.__wrapped__(owner, tensor)
    pooled = out.pooler_output if hasattr(out, "pooler_output") else out[1]
    return pooled[0].numpy().astype(np.float32)


def end_of_image_embedding(embedder: Any) -> np.ndarray:
    import torch

    with torch.no_grad():
        return embedder(input_ids=torch.tensor([[END_OF_IMAGE]]))[0, 0].numpy().astype(np.float32)


# -- driver ---------------------------------------------------------------------------------------------


def project(python: str, code: str, *args: str) -> str:
    done = subprocess.run([python, "-c", code, *args], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


_BUILD = """
import json
from model_io.synth.vision_tower import VISION_PRESETS, cached_vision_mmproj
p = VISION_PRESETS["tiny"]
print(json.dumps([str(cached_vision_mmproj("tiny")), [list(s) for s in p.stages], p.stem, p.hidden]))
"""

_MEASURE = """
import json, sys
import numpy as np
from model_io.media import MediaInput
from model_io.native import NativeModel
from model_io.settings import LoadSettings
from model_io.synth import cached_text_model
from model_io.vision import VisionEncoder
ref = np.load(sys.argv[2])
model = NativeModel(cached_text_model("tiny"), LoadSettings(n_ctx=512, n_threads=2))
out = {}
with VisionEncoder(sys.argv[1], model, n_threads=2) as vision:
    for name in ("image_a", "image_b"):
        rows = vision.encode(MediaInput("image", ref[name], label=name))
        expected = ref["features_" + name[-1]]
        cos = (rows * expected).sum(1) / np.linalg.norm(rows, axis=1) / np.linalg.norm(expected, axis=1)
        diff = np.abs(rows - expected)
        out[name] = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
                     "min_row_cosine": float(cos.min())}
model.close()
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--timm", type=Path, help="timm 1.0.31 wheel (or source folder) to import")
    parser.add_argument("--project-python", default=str(REPO / ".venv" / "bin" / "python"))
    parser.add_argument("--no-measure", action="store_true", help="skip running llama.cpp on the result")
    args = parser.parse_args()

    mmproj, stages, stem, hidden = json.loads(project(args.project_python, _BUILD))
    mmproj = Path(mmproj)
    site = next((REPO / ".venv" / "lib").glob("python3.*/site-packages"))
    timm = import_timm(args.timm, site)
    tower, embedder = build_tower(timm, stages, stem, hidden), build_embedder(hidden, hidden)
    load_weights(tower, embedder, gguf_state(mmproj))

    arrays: dict[str, Any] = dict(reference_images())
    arrays["features_a"] = image_features(tower, embedder, hidden, arrays["image_a"])
    arrays["features_b"] = image_features(tower, embedder, hidden, arrays["image_b"])
    arrays["end_of_image"] = end_of_image_embedding(embedder)
    hf_pixels = hf_preprocess(arrays["image_c"])
    OUT.mkdir(parents=True, exist_ok=True)
    npz = OUT / "vision_gemma3n_tiny.npz"
    np.savez_compressed(npz, **arrays)

    import torch
    import transformers

    sidecar: dict[str, Any] = {
        "mmproj_sha256": hashlib.sha256(mmproj.read_bytes()).hexdigest(),
        "mmproj_bytes": mmproj.stat().st_size,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "timm": timm.__version__,
        },
        "made_by": "tools/make_vision_reference.py",
        # transformers' own preprocessing of image_c (stored as a hash: 768x768x3 does not compress)
        "hf_pixels_c_sha256": hashlib.sha256(hf_pixels.tobytes()).hexdigest(),
    }
    if not args.no_measure:
        sidecar["measured_llama_cpp"] = json.loads(
            project(args.project_python, _MEASURE, str(mmproj), str(npz))
        )
    (OUT / "vision_gemma3n_tiny.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    print(json.dumps(sidecar, indent=2))


if __name__ == "__main__":
    main()
