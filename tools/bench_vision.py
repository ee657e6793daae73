"""Full-size Gemma 3n image encoding: Gemma Desk's encoder against llama.cpp's own llama-mtmd-cli.

Both run the same vendored llama.cpp/mtmd code on the same synthetic full-size E2B text model and
MobileNet-V5 projector, with the same image and thread count; runs alternate so machine load affects
both alike, and both are timed warm (our encoder encodes once before timing; mtmd-cli reserves its
graph at start-up).  Prints per-run figures, medians and the ratio (ours / llama-mtmd-cli).

    python tools/bench_vision.py [--runs 3] [--threads 2] [--json out.json]

This is the encoder alone (``VisionEncoder``); ``gemma-desk bench --media`` times the same
encode through the app's engine, with the shared helpers in model_io/benchmark/media_bench.py.
llama-mtmd-cli comes from tools/build_llama_cpp_tools.sh (built from the pinned sdist's source).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model_io.benchmark.llama_bench import find_tool  # noqa: E402
from model_io.benchmark.machine import load_average, machine_info  # noqa: E402
from model_io.benchmark.media_bench import mtmd_cli_encode_ms, write_test_image  # noqa: E402
from model_io.images import load_image  # noqa: E402
from model_io.media import MediaInput  # noqa: E402
from model_io.native import NativeModel  # noqa: E402
from model_io.settings import LoadSettings  # noqa: E402
from model_io.synth import cached_text_model  # noqa: E402
from model_io.synth.vision_tower import cached_vision_mmproj  # noqa: E402
from model_io.vision import VisionEncoder  # noqa: E402


def ours(encoder: VisionEncoder, media: MediaInput) -> float:
    started = time.perf_counter()
    encoder.encode(media)
    return (time.perf_counter() - started) * 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mtmd-cli", type=Path, help="llama-mtmd-cli (default: the build script's folder)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    text, mmproj = cached_text_model("e2b"), cached_vision_mmproj("e2b")
    cli = find_tool("llama-mtmd-cli", args.mtmd_cli)
    ours_ms: list[float] = []
    theirs_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        image = write_test_image(Path(tmp) / "photo.png")
        media = load_image(image)
        model = NativeModel(text, LoadSettings(n_ctx=2048, n_threads=args.threads))
        try:
            with VisionEncoder(mmproj, model, args.threads) as encoder:
                first = ours(encoder, media)
                print(f"gemma-desk first encode (graph reserved) {first:.0f} ms", flush=True)
                for run in range(args.runs):
                    ours_ms.append(ours(encoder, media))
                    theirs_ms.append(mtmd_cli_encode_ms(cli, text, mmproj, image, args.threads)[0])
                    mine, theirs = ours_ms[-1], theirs_ms[-1]
                    print(
                        f"run {run + 1}: gemma-desk {mine:.0f} ms, llama-mtmd-cli {theirs:.0f} ms", flush=True
                    )
        finally:
            model.close()
    report = {
        "machine": machine_info(args.threads),
        "threads": args.threads,
        "gemma_desk_ms": ours_ms,
        "llama_mtmd_cli_ms": theirs_ms,
        "median_ratio": statistics.median(ours_ms) / statistics.median(theirs_ms),
        "load_average_end": load_average(),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
