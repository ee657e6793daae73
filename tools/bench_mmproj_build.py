#!/usr/bin/env python3
"""Benchmark the mmproj builder at full size: E2B tower shapes, against the local fake hub.

Writes a synthetic checkpoint with the real Gemma 3n E2B/E4B tower and embedder shapes
(MobileNet-V5-300M + the 12-block conformer, 983 M parameters, random bf16) plus a 1 GB
text tensor that must never be fetched, in three safetensors shards on disk; serves them
from ``tests/fake_hub.py`` (memory-mapped, so the hub holds no copy); and runs
``build_mmproj`` in a child process, reporting its wall time, its peak RSS (the builder
never holds more than one piece of tensors), the bytes fetched and the file size, with the
load average before and after (the machine may be shared).  Needs ≈ 5 GB of free disk in
WORKDIR; the files are deleted afterwards unless ``--keep``.  Run it alone::

    flock /tmp/gemma-desk-bigjob.lock python tools/bench_mmproj_build.py /tmp/mmproj-bench
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import mmap
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
sys.path.insert(0, str(REPO_ROOT))

import fake_hub  # noqa: E402

from model_io.mmproj_build.names import checkpoint_shape, hf_name  # noqa: E402
from model_io.synth.audio_tower import AUDIO_PRESETS, audio_tensor_plan  # noqa: E402
from model_io.synth.vision_tower import vision_tensor_plan  # noqa: E402

REPO = "google/gemma-3n-E2B-it"
TEXT_TENSOR = ("model.language_model.embed_tokens.weight", (262144, 2048))

CHILD = """
import json, resource, sys, time
from pathlib import Path
from model_io.mmproj_build import build_mmproj
started = time.monotonic()
result = build_mmproj(sys.argv[1], Path(sys.argv[2]), endpoint=sys.argv[3])
print(json.dumps({"build_s": round(time.monotonic() - started, 1), "file_bytes": result.size_bytes,
                  "fetched_bytes": result.fetched_bytes,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def tower_tensors() -> list[tuple[str, tuple[int, ...]]]:
    audio = replace(AUDIO_PRESETS["e2b"], matrix_type=GGMLQuantizationType.F16)
    specs = vision_tensor_plan("e2b", text_n_embd=2048) + audio_tensor_plan(audio)
    return [(hf_name(s.name), checkpoint_shape(s)) for s in specs]


def write_shard(path: Path, items: list[tuple[str, tuple[int, ...]]], rng: np.random.Generator) -> str:
    """A bf16 safetensors file (random values), streamed; returns its sha256."""
    items = sorted(items)
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in items:
        n = math.prod(shape) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for block in (struct.pack("<Q", len(text)), text):
            handle.write(block)
            digest.update(block)
        for _, shape in items:
            n = math.prod(shape)
            for start in range(0, n, 1 << 24):
                values = rng.standard_normal(min(1 << 24, n - start), dtype=np.float32) * np.float32(0.05)
                data = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
                handle.write(data)
                digest.update(data)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint and the built file")
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    towers = tower_tensors()
    half = len(towers) // 2
    shards = {
        "model-00001-of-00003.safetensors": towers[:half],
        "model-00002-of-00003.safetensors": towers[half:],
        "model-00003-of-00003.safetensors": [TEXT_TENSOR],
    }
    rng = np.random.default_rng(0)
    digests = {name: write_shard(work / name, group, rng) for name, group in shards.items()}
    maps = {}
    for name in shards:
        with (work / name).open("rb") as handle:
            maps[name] = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    # the fake hub hashes a file on every request; these are large, so give it their known digests
    known = {id(m): digests[n] for n, m in maps.items()}
    plain = fake_hub.FakeFile.sha256
    fake_hub.FakeFile.sha256 = property(lambda f: known.get(id(f.data)) or plain.fget(f))  # type: ignore[attr-defined,method-assign]
    config = {
        "model_type": "gemma3n",
        "text_config": {"hidden_size": 2048},
        "audio_config": {"hidden_size": 1536, "conf_num_hidden_layers": 12, "conf_num_attention_heads": 8},
    }
    weight_map = {tensor: name for name, group in shards.items() for tensor, _ in group}
    out = work / "out" / "gemma-3n-E2B-it-mmproj-F16.gguf"
    load_before = os.getloadavg()
    with fake_hub.FakeHub(lifetime=3600) as hub:
        small = {"config.json": json.dumps(config).encode()}
        small["model.safetensors.index.json"] = json.dumps({"weight_map": weight_map}).encode()
        repo = hub.add_repo(REPO, small)
        for name, data in maps.items():
            repo.files[name] = fake_hub.FakeFile(data)  # type: ignore[arg-type]
        child = [sys.executable, "-c", CHILD, REPO, str(out), hub.url]
        done = subprocess.run(child, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["checkpoint_bytes"] = sum((work / n).stat().st_size for n in shards)
    report["loadavg_before"], report["loadavg_after"] = load_before, os.getloadavg()
    print(json.dumps(report, indent=1))
    if not args.keep:
        for m in maps.values():
            m.close()
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
