"""Full-size Gemma 3n image encoding: Gemma Desk's encoder against llama.cpp's own llama-mtmd-cli.

Both run the same vendored llama.cpp/mtmd code on the same synthetic full-size E2B text model and
MobileNet-V5 projector, with the same image and thread count; runs alternate so machine load affects
both alike.  Prints per-run figures, medians and the ratio (ours / llama-mtmd-cli).

    python tools/bench_vision.py [--runs 3] [--threads 2] [--json out.json]

llama-mtmd-cli comes from tools/build_llama_cpp_tools.sh (built from the pinned sdist's source).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model_io.images import load_image  # noqa: E402
from model_io.native import NativeModel  # noqa: E402
from model_io.settings import LoadSettings  # noqa: E402
from model_io.synth import cached_text_model  # noqa: E402
from model_io.synth.vision_tower import cached_vision_mmproj  # noqa: E402
from model_io.vision import VisionEncoder  # noqa: E402

ENCODED = re.compile(r"(?:slice encoded|batch encoding done) in (\d+) ms")


def tools_dir() -> Path:
    script = REPO / "tools" / "build_llama_cpp_tools.sh"
    out = subprocess.run(["bash", str(script)], check=True, capture_output=True, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def ours(model: NativeModel, mmproj: Path, image: Path, threads: int) -> float:
    media = load_image(image)
    with VisionEncoder(mmproj, model, threads) as encoder:
        started = time.perf_counter()
        encoder.encode(media)
        return (time.perf_counter() - started) * 1000.0


def theirs(cli: Path, text: Path, mmproj: Path, image: Path, threads: int) -> float:
    command = [str(cli), "-m", str(text), "--mmproj", str(mmproj), "--image", str(image), "-p", "Describe.",
               "-n", "1", "-t", str(threads), "-c", "2048", "--no-warmup"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    match = ENCODED.search(result.stdout + result.stderr)
    if not match:
        raise RuntimeError(f"llama-mtmd-cli printed no encode time:\n{result.stderr[-2000:]}")
    return float(match.group(1))


def machine() -> dict[str, object]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    text, mmproj = cached_text_model("e2b"), cached_vision_mmproj("e2b")
    cli = tools_dir() / "llama-mtmd-cli"
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "photo.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (900, 1200, 3), dtype=np.uint8)).save(image)
        model = NativeModel(text, LoadSettings(n_ctx=2048, n_threads=args.threads))
        try:
            ours_ms, theirs_ms = [], []
            for run in range(args.runs):
                ours_ms.append(ours(model, mmproj, image, args.threads))
                theirs_ms.append(theirs(cli, text, mmproj, image, args.threads))
                print(
                    f"run {run + 1}: gemma-desk {ours_ms[-1]:.0f} ms, llama-mtmd-cli {theirs_ms[-1]:.0f} ms"
                )
        finally:
            model.close()
    report = {
        "machine": machine(),
        "threads": args.threads,
        "gemma_desk_ms": ours_ms,
        "llama_mtmd_cli_ms": theirs_ms,
        "median_ratio": statistics.median(ours_ms) / statistics.median(theirs_ms),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
