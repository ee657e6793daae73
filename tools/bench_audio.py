#!/usr/bin/env python3
"""Benchmark Gemma Desk's NumPy Gemma 3n audio tower at full size (synthetic weights, real shapes).

Builds (once, cached) the full-size synthetic audio mmproj (``e2b``; E2B and E4B
share one audio tower: 12 blocks, width 1536, 681 M parameters, F16 matrices as in
an ``mmproj-…-f16.gguf``) and reports:

* machine: CPU model, cores, NumPy and its BLAS (OpenBLAS core and build), threads,
  and the load average next to every timing (the machine may be shared);
* load time, the tower's resident weight bytes, RSS after loading, peak RSS;
* real-time factor (encode seconds / audio seconds) of ``AudioTower.clip_rows`` for
  5 s and 30 s clips: min and median of N runs after a warm-up;
* where the time goes: log-mel, SSCP, each conformer part summed over the 12 blocks
  (FFN start, attention, light conv, FFN end, final norm), embedder; with the
  conformer's achieved GFLOP/s;
* a roofline: plain float32 ``sgemm`` of the conformer's own shapes, one BLAS thread
  and split over the team as the tower does, against the CPU's nominal peak;
* streaming: a 5 s clip fed in 100 ms blocks at real-time pace to
  ``StreamingAudioEncoder``, and the time from the last block (push-to-talk key
  release) to ``finish()`` returning, next to the one-shot encode of the same clip;
* ``--compare``: several configurations (weight storage / threads, optionally the
  implementation at a git revision) timed in interleaved rounds in one process, so
  they see the same machine load.

Examples::

    python tools/bench_audio.py                       # defaults: compact weights, default threads
    python tools/bench_audio.py --runs 7 --json out.json
    python tools/bench_audio.py --compare compact/2,float32/2,compact/1,float32/1
    # against the tower before this work (commit b53f6b8), with OpenBLAS's 1 and 2 threads:
    python tools/bench_audio.py --compare b53f6b8/1,b53f6b8/2b,compact/2 --baseline b53f6b8 --skip-30

A variant is ``STORAGE/THREADS``: storage ``compact``, ``float32`` or ``float16`` (or
the ``--baseline`` revision), threads the tower's team size; a trailing ``b``
(``1b``, ``2b``) means one Python thread with OpenBLAS's own N threads instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model_io.audio import conformer as conf  # noqa: E402
from model_io.audio import spec  # noqa: E402
from model_io.audio.features import log_mel  # noqa: E402
from model_io.audio.streaming import (  # noqa: E402
    DEFAULT_FEED_BUDGET,
    DEFAULT_MIN_FRAMES,
    StreamingAudioEncoder,
)
from model_io.audio.tower import AudioTower  # noqa: E402
from model_io.audio.weights import COMPACT, storage_name  # noqa: E402
from model_io.benchmark.machine import cpu_model, load_average  # noqa: E402
from model_io.benchmark.media_bench import speech_like_clip  # noqa: E402

STORAGE = {"compact": COMPACT, "float32": np.float32, "float16": np.float16}
BLOCK_PARTS = ("ffn_start", "attention", "light_conv", "ffn_end", "final_norm")


# --------------------------------------------------------------------------- machine


def cpu_flags() -> list[str]:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_bf16") if f in flags]
    return []


def cpu_mhz() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"bogomips\s*:\s*([\d.]+)", text)
        if match:
            return float(match.group(1)) / 2  # x86 BogoMIPS = 2 x the nominal clock in MHz
    return None


def machine_info() -> dict:
    lib = conf.openblas()
    mhz = cpu_mhz()
    flags = cpu_flags()
    # AVX2 + 2 FMA pipes: 2 x 8 float32 lanes x 2 flops per cycle and core
    peak = round(mhz * 32 / 1000, 1) if mhz and "fma" in flags else None
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpu_flags": flags,
        "nominal_mhz": mhz,
        "peak_gflops_per_core_nominal": peak,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": lib.config.strip() if lib else "not OpenBLAS (threads not controlled)",
        "blas_core": lib.corename if lib else None,
        "blas_threads_default": lib.threads if lib else None,
        "tower_threads_default": conf.default_threads(),
        "load_average": load_average(),
    }


def rss_mb() -> dict:
    out = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS", "VmHWM")):
                out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    if "VmHWM" not in out:
        scale = 1 if sys.platform == "darwin" else 1024
        out["VmHWM"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024, 1)
    return {"rss_mb": out.get("VmRSS"), "peak_rss_mb": out["VmHWM"]}


# --------------------------------------------------------------------------- inputs


def mmproj_path(args: argparse.Namespace) -> tuple[Path, float | None]:
    if args.mmproj:
        return Path(args.mmproj), None
    from model_io.paths import cache_dir
    from model_io.synth.audio_tower import WRITER_VERSION, write_audio_mmproj

    name = f"gemma-3n-synthetic-audio-{args.preset}-mmproj.gguf"
    path = cache_dir() / "synthetic" / f"audio-v{WRITER_VERSION}" / name
    if path.exists():
        return path, None
    print(f"building the synthetic {args.preset} audio mmproj at {path} ...", flush=True)
    start = time.perf_counter()
    write_audio_mmproj(args.preset, path)
    return path, time.perf_counter() - start


def flops_per_frame(dims) -> float:
    """Conformer matmul FLOPs per 40 ms frame (gemma3n-audio.md §7.2: 652 M MAC at full size)."""
    d, f = dims.d_model, dims.d_ffn
    macs = 4 * d * f + 4 * d * d + 3 * d * d  # two FFNs, q/k/v/out, GLU in + out
    return 2.0 * macs * dims.n_layer


def n_frames(seconds: float) -> int:
    from model_io.audio.spec import n_mel_frames

    t1 = -(-n_mel_frames(round(seconds * spec.SAMPLE_RATE)) // 2)
    return -(-t1 // 2)


def stats(times: list[float], seconds: float) -> dict:
    return {
        "runs": len(times),
        "min_s": round(min(times), 4),
        "median_s": round(statistics.median(times), 4),
        "rtf_min": round(min(times) / seconds, 4),
        "rtf_median": round(statistics.median(times) / seconds, 4),
    }


# --------------------------------------------------------------------------- variants


@dataclass
class Variant:
    name: str
    storage: str  # compact / float32 / float16 / baseline
    threads: int
    blas_threads: int | None = None  # OpenBLAS's own threads (with a 1-thread team)
    tower: object = None
    module: object = None
    load_s: float = 0.0
    resident_bytes: int = 0
    times: dict[float, list[float]] = field(default_factory=dict)
    loads: dict[float, list[list[float]]] = field(default_factory=dict)

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        with conf.blas_threads(self.blas_threads if self.blas_threads is not None else 1):
            yield

    def run(self, wave: np.ndarray) -> np.ndarray:
        with self.context():
            return self.tower.clip_rows(wave)


def parse_variant(text: str, baseline: str | None) -> Variant:
    storage, _, threads = text.partition("/")
    threads = threads or str(conf.default_threads())
    blas = None
    if threads.endswith("b"):
        blas, threads = int(threads[:-1]), "1"
    if storage not in STORAGE and storage != baseline:
        raise SystemExit(f"unknown storage {storage!r} in variant {text!r} (or pass --baseline {storage})")
    return Variant(text, storage, int(threads), blas)


def import_baseline(revision: str) -> object:
    """``model_io/audio`` as of a git revision, importable as a separate package (read-only git)."""
    files = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{revision}:model_io/audio"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    package = "_bench_baseline_audio"
    target = Path(tempfile.mkdtemp(prefix="bench-audio-")) / package
    target.mkdir()
    for name in files:
        if name.endswith(".py"):
            text = subprocess.run(
                ["git", "show", f"{revision}:model_io/audio/{name}"],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            (target / name).write_text(text.replace("model_io.audio", package))
    sys.path.insert(0, str(target.parent))
    return importlib.import_module(f"{package}.tower")


def load_variant(variant: Variant, path: Path, baseline_module: object | None) -> None:
    start = time.perf_counter()
    if variant.storage in STORAGE:
        variant.tower = AudioTower(path, weight_dtype=STORAGE[variant.storage], threads=variant.threads)
    else:
        variant.tower = baseline_module.AudioTower(path)  # type: ignore[attr-defined]
    variant.tower.load()
    variant.load_s = time.perf_counter() - start
    variant.resident_bytes = variant.tower.resident_bytes


def share_towers(variants: list[Variant], path: Path, baseline_module: object | None) -> None:
    """One loaded tower per storage (thread counts share it)."""
    loaded: dict[str, Variant] = {}
    for v in variants:
        if v.storage in loaded:
            src = loaded[v.storage]
            if v.storage in STORAGE:
                v.tower = AudioTower(path, weight_dtype=STORAGE[v.storage], threads=v.threads)
                v.tower._weights = src.tower._weights  # same arrays, own thread team
            else:
                v.tower = src.tower
            v.load_s, v.resident_bytes = src.load_s, src.resident_bytes
        else:
            load_variant(v, path, baseline_module)
            loaded[v.storage] = v
            print(
                f"  loaded {v.storage}: {v.load_s:.2f} s, {v.resident_bytes / 2**20:.0f} MiB resident, "
                f"load {load_average()}",
                flush=True,
            )


def time_rounds(variants: list[Variant], seconds_list: list[float], runs: dict[float, int]) -> None:
    for seconds in seconds_list:
        wave = speech_like_clip(seconds)
        for v in variants:  # warm-up (first-touch of buffers, thread start)
            v.run(wave)
        for _ in range(runs[seconds]):
            for v in variants:
                start = time.perf_counter()
                v.run(wave)
                v.times.setdefault(seconds, []).append(time.perf_counter() - start)
                v.loads.setdefault(seconds, []).append(load_average())
        for v in variants:
            s = stats(v.times[seconds], seconds)
            print(
                f"  {v.name:>16} {seconds:>4.0f} s clip: "
                f"min {s['min_s']:.3f} s  median {s['median_s']:.3f} s  "
                f"RTF {s['rtf_min']:.3f} / {s['rtf_median']:.3f}   load {load_average()}",
                flush=True,
            )


# --------------------------------------------------------------------------- ablations

ABLATIONS: dict[str, dict] = {
    "as shipped": {},
    "NumPy widening (no OpenCV)": {"opencv": False},
    "widen blocks of 256 Ki": {"WIDEN_BLOCK_ELEMENTS": 1 << 18},
    "wide matrices by rows": {"WIDE_BY_COLUMNS": False},
}


@contextlib.contextmanager
def ablation(settings: dict) -> Iterator[None]:
    saved = {k: getattr(conf, k) for k in settings if k != "opencv"}
    saved_cv = (conf._cv2_searched, conf._cv2_add)
    try:
        for key, value in settings.items():
            if key == "opencv":
                conf._cv2_searched, conf._cv2_add = True, None
            else:
                setattr(conf, key, value)
        yield
    finally:
        for key, value in saved.items():
            setattr(conf, key, value)
        conf._cv2_searched, conf._cv2_add = saved_cv


def run_ablations(tower: AudioTower, seconds_list: list[float], runs: dict[float, int]) -> dict:
    """The tower as configured against single changes undone, in interleaved rounds."""
    out: dict = {}
    for seconds in seconds_list:
        wave = speech_like_clip(seconds)
        times: dict[str, list[float]] = {name: [] for name in ABLATIONS}
        for settings in ABLATIONS.values():  # warm-up
            with ablation(settings):
                tower.clip_rows(wave)
        for _ in range(runs[seconds]):
            for name, settings in ABLATIONS.items():
                with ablation(settings):
                    start = time.perf_counter()
                    tower.clip_rows(wave)
                    times[name].append(time.perf_counter() - start)
        out[f"{seconds:.0f}s"] = {name: stats(t, seconds) for name, t in times.items()}
        out[f"{seconds:.0f}s"]["load_average"] = load_average()
        for name, t in times.items():
            s = stats(t, seconds)
            print(
                f"  {name:>28} {seconds:>4.0f} s: min {s['min_s']:.3f} s  median {s['median_s']:.3f} s  "
                f"load {load_average()}",
                flush=True,
            )
    return out


# --------------------------------------------------------------------------- breakdown


def breakdown(tower: AudioTower, seconds: float, repeats: int) -> dict:
    """Per-part seconds (min over ``repeats`` profiled runs of the one-shot path)."""
    wave = speech_like_clip(seconds)
    best: dict[str, float] = {}
    for _ in range(repeats):
        parts: dict[str, float] = {}
        with tower.computing() as (weights, team):
            start = time.perf_counter()
            mel = log_mel(wave)
            parts["log_mel"] = time.perf_counter() - start
            start = time.perf_counter()
            x = conf.subsample(mel, weights.sscp, team)
            parts["sscp"] = time.perf_counter() - start
            profile: dict[str, float] = {}
            start = time.perf_counter()
            enc = conf.conformer_chunk(x, weights, conf.EncoderState(weights.dims), team, profile=profile)
            parts["conformer"] = time.perf_counter() - start
            parts.update({f"conformer.{k}": v for k, v in profile.items()})
            start = time.perf_counter()
            conf.embed_soft(enc, weights, team)
            parts["embedder"] = time.perf_counter() - start
        total = parts["log_mel"] + parts["sscp"] + parts["conformer"] + parts["embedder"]
        parts["total"] = total
        if not best or total < best["total"]:
            best = parts
    dims = tower.dims
    gflop = flops_per_frame(dims) * n_frames(seconds) / 1e9
    best = {k: round(v, 4) for k, v in best.items()}
    best["conformer_gflop"] = round(gflop, 1)
    best["conformer_gflops_per_s"] = round(gflop / best["conformer"], 1)
    best["load_average"] = load_average()
    return best


def print_breakdown(seconds: float, parts: dict) -> None:
    total = parts["total"]
    print(f"  {seconds:.0f} s clip, total {total:.3f} s (load {parts['load_average']}):")
    for key in ("log_mel", "sscp", "conformer", *(f"conformer.{p}" for p in BLOCK_PARTS), "embedder"):
        if key in parts:
            indent = "      " if key.startswith("conformer.") else "    "
            print(f"{indent}{key:<24} {parts[key]:8.4f} s  {100 * parts[key] / total:5.1f} %")
    print(
        f"    conformer matmuls {parts['conformer_gflop']} GFLOP -> {parts['conformer_gflops_per_s']} GFLOP/s"
    )


# --------------------------------------------------------------------------- roofline


def roofline(dims, threads: int, frames: int, repeats: int = 5) -> dict:
    """float32 sgemm of the conformer's shapes at ``frames`` rows, as one pass would run them."""
    d, f = dims.d_model, dims.d_ffn
    shapes = {
        "ffn_up": (f, d),
        "ffn_down": (d, f),
        "qkv": (3 * d, d),
        "attn_out": (d, d),
        "conv_in": (2 * d, d),
    }
    rng = np.random.default_rng(0)
    out: dict = {"frames": frames, "threads": threads}
    team = conf.Team(threads)
    try:
        for name, (n, k) in shapes.items():
            w = rng.standard_normal((n, k), dtype=np.float32)
            x = rng.standard_normal((frames, k), dtype=np.float32)
            y = np.empty((frames, n), dtype=np.float32)
            flop = 2.0 * frames * n * k
            row = {}

            def split(x: np.ndarray = x, w: np.ndarray = w, y: np.ndarray = y, n: int = n) -> None:
                team.run(lambda lo, hi: conf.matmul_t(x, w, y[:, lo:hi], lo, hi), n, 64)

            def single(x: np.ndarray = x, w: np.ndarray = w, y: np.ndarray = y) -> None:
                np.matmul(x, w.T, out=y)

            for label, blas, fn in (
                ("blas1", 1, single),
                (f"team{threads}", 1, split),
                (f"blas{threads}", threads, single),
            ):
                with conf.blas_threads(blas):
                    fn()
                    times = []
                    for _ in range(repeats):
                        start = time.perf_counter()
                        fn()
                        times.append(time.perf_counter() - start)
                row[label] = round(flop / min(times) / 1e9, 1)
            out[name] = row
    finally:
        team.close()
    out["load_average"] = load_average()
    return out


# --------------------------------------------------------------------------- streaming


def streaming_latency(
    tower: AudioTower,
    seconds: float,
    block_ms: float,
    runs: int,
    min_frames: int,
    feed_budget: float | None = DEFAULT_FEED_BUDGET,
) -> dict:
    """Push-to-talk: the recorder delivers ``block_ms`` blocks in real time; whenever the encoder is
    free it takes everything recorded so far (one ``feed``).  Measures key release (the last block
    recorded) → ``finish()`` returning the 189 rows, next to the one-shot encode of the clip."""
    wave = speech_like_clip(seconds)
    block = round(block_ms * spec.SAMPLE_RATE / 1000)
    reference = tower.clip_rows(wave)
    latencies, tails, feed_max, feeds, one_shot = [], [], [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        tower.clip_rows(wave)
        one_shot.append(time.perf_counter() - start)
        encoder = StreamingAudioEncoder(tower, min_frames=min_frames, feed_budget=feed_budget)
        t0 = time.perf_counter()
        fed, worst, n_feeds, last_feed = 0, 0.0, 0, t0
        while fed < len(wave):
            recorded = min(len(wave), int((time.perf_counter() - t0) * spec.SAMPLE_RATE) // block * block)
            if recorded <= fed:  # nothing new yet: wait for the next block
                time.sleep(max(0.0, t0 + (fed + block) / spec.SAMPLE_RATE - time.perf_counter()))
                continue
            last_feed = time.perf_counter()
            encoder.feed(wave[fed:recorded])
            worst = max(worst, time.perf_counter() - last_feed)
            fed, n_feeds = recorded, n_feeds + 1
        release = t0 + len(wave) / spec.SAMPLE_RATE  # key up: the last block has been recorded
        rows = encoder.finish()
        end = time.perf_counter()
        latencies.append(end - release)
        tails.append(end - last_feed)
        feed_max.append(worst)
        feeds.append(n_feeds)
        assert float(np.abs(rows - reference).max()) <= 1e-4
    return {
        "clip_s": seconds,
        "block_ms": block_ms,
        "min_frames": min_frames,
        "feed_budget": feed_budget,
        "release_to_rows_min_s": round(min(latencies), 4),
        "release_to_rows_median_s": round(statistics.median(latencies), 4),
        "last_feed_plus_finish_min_s": round(min(tails), 4),
        "one_shot_min_s": round(min(one_shot), 4),
        "one_shot_median_s": round(statistics.median(one_shot), 4),
        "slowest_feed_s": round(max(feed_max), 4),
        "feed_calls": feeds,
        "load_average": load_average(),
    }


def streaming_compare(tower: AudioTower, configs: list[tuple[int, float | None]], runs: int) -> dict:
    """Release-to-rows latency per (min_frames, feed_budget), over clips of 4.3-7.1 s (release phases)."""
    out: dict = {}
    lengths = (4.3, 5.0, 5.7, 7.1)
    for min_frames, budget in configs:
        out[f"{min_frames}:{budget}"] = {"latencies": [], "one_shot": []}
    for seconds in lengths:
        for min_frames, budget in configs:
            r = streaming_latency(tower, seconds, 100.0, runs, min_frames, budget)
            entry = out[f"{min_frames}:{budget}"]
            entry["latencies"] += [r["release_to_rows_min_s"], r["release_to_rows_median_s"]]
            entry["one_shot"].append(r["one_shot_min_s"] / seconds)
    for key, entry in out.items():
        lat = entry.pop("latencies")
        rtf = entry.pop("one_shot")
        entry.update(
            latency_mean_s=round(statistics.mean(lat), 3),
            latency_median_s=round(statistics.median(lat), 3),
            latency_max_s=round(max(lat), 3),
            one_shot_rtf_mean=round(statistics.mean(rtf), 3),
        )
        print(f"  min_frames:budget {key:>10}: " + json.dumps(entry), flush=True)
    out["load_average"] = load_average()
    return out


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mmproj", help="an audio mmproj GGUF (default: the cached synthetic full-size one)")
    parser.add_argument("--preset", default="e2b", help="synthetic preset to build (default e2b)")
    parser.add_argument("--storage", default="compact", choices=sorted(STORAGE), help="weight storage")
    parser.add_argument("--threads", type=int, default=None, help="tower threads (default: automatic)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of the 5 s clip (default 5)")
    parser.add_argument("--runs-30", type=int, default=3, help="timed runs of the 30 s clip (default 3)")
    parser.add_argument("--skip-30", action="store_true", help="no 30 s clip")
    parser.add_argument("--compare", help="variants STORAGE/THREADS[b],... timed in interleaved rounds")
    parser.add_argument("--baseline", help="git revision whose model_io/audio is variant storage REV")
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--no-roofline", action="store_true")
    parser.add_argument("--no-streaming", action="store_true")
    parser.add_argument("--stream-runs", type=int, default=3)
    parser.add_argument("--min-frames", type=int, default=DEFAULT_MIN_FRAMES, help="streaming block step")
    parser.add_argument(
        "--feed-budget",
        type=float,
        default=DEFAULT_FEED_BUDGET,
        help="streaming: seconds of work per second of audio in one feed (default: unlimited)",
    )
    parser.add_argument(
        "--ablations", action="store_true", help="also time single fast-path changes undone (interleaved)"
    )
    parser.add_argument(
        "--stream-compare",
        help="streaming policies MIN_FRAMES:BUDGET,... (BUDGET none = unlimited) over 4.3-7.1 s clips",
    )
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)

    given = argv if argv is not None else sys.argv[1:]
    report: dict = {"command": " ".join(["python tools/bench_audio.py", *given])}
    report["machine"] = machine_info()
    print("machine:", json.dumps(report["machine"], indent=None), flush=True)
    path, built = mmproj_path(args)
    report["mmproj"] = {"path": str(path), "bytes": path.stat().st_size, "build_s": built}
    print(f"mmproj: {path} ({path.stat().st_size / 2**30:.2f} GiB)", flush=True)

    seconds_list = [5.0] if args.skip_30 else [5.0, 30.0]
    runs = {5.0: args.runs, 30.0: args.runs_30}
    baseline = import_baseline(args.baseline) if args.baseline else None

    if args.compare:
        variants = [parse_variant(v, args.baseline) for v in args.compare.split(",")]
        print("loading ...", flush=True)
        share_towers(variants, path, baseline)
        report["after_load"] = rss_mb()
        print("timing (interleaved rounds) ...", flush=True)
        time_rounds(variants, seconds_list, runs)
        report["variants"] = {
            v.name: {
                "storage": v.storage,
                "threads": v.threads,
                "blas_threads": v.blas_threads if v.blas_threads is not None else 1,
                "load_s": round(v.load_s, 2),
                "resident_mib": round(v.resident_bytes / 2**20, 1),
                **{
                    f"{s:.0f}s": stats(v.times[s], s) | {"load_average": v.loads[s][-1]} for s in seconds_list
                },
            }
            for v in variants
        }
        report["peak"] = rss_mb()
    else:
        before = rss_mb()
        start = time.perf_counter()
        tower = AudioTower(path, weight_dtype=STORAGE[args.storage], threads=args.threads)
        tower.load()
        load_s = time.perf_counter() - start
        after = rss_mb()
        first = tower.load().layers[0]
        storages = sorted({storage_name(a) for a in (first.ffn_start.up, first.qkv)})
        report["load"] = {
            "storage": args.storage,
            "matrices_held_as": storages,
            "threads": tower.threads,
            "load_s": round(load_s, 2),
            "resident_mib": round(tower.resident_bytes / 2**20, 1),
            "rss_before_mb": before["rss_mb"],
            "rss_after_load_mb": after["rss_mb"],
            "load_average": load_average(),
        }
        print("load:", json.dumps(report["load"]), flush=True)
        variant = Variant(f"{args.storage}/{tower.threads}", args.storage, tower.threads, tower=tower)
        time_rounds([variant], seconds_list, runs)
        report["rtf"] = {
            f"{s:.0f}s": stats(variant.times[s], s) | {"load_average": variant.loads[s][-1]}
            for s in seconds_list
        }
        if not args.no_breakdown:
            print("breakdown (min of 2 profiled runs):", flush=True)
            report["breakdown"] = {}
            for s in seconds_list:
                parts = breakdown(tower, s, 2)
                report["breakdown"][f"{s:.0f}s"] = parts
                print_breakdown(s, parts)
        if not args.no_roofline:
            print("roofline (float32 sgemm GFLOP/s of the conformer's shapes):", flush=True)
            report["roofline"] = {}
            for s in seconds_list:
                roof = roofline(tower.dims, tower.threads, n_frames(s))
                report["roofline"][f"{s:.0f}s"] = roof
                print(
                    f"  {s:.0f} s ({roof['frames']} frames): "
                    + json.dumps({k: v for k, v in roof.items() if isinstance(v, dict)})
                    + f"  load {roof['load_average']}",
                    flush=True,
                )
        if not args.no_streaming:
            print("streaming (5 s clip in 100 ms blocks at real-time pace):", flush=True)
            budget = args.feed_budget if args.feed_budget is not None and args.feed_budget > 0 else None
            result = streaming_latency(tower, 5.0, 100.0, args.stream_runs, args.min_frames, budget)
            report["streaming"] = result
            print("  " + json.dumps(result), flush=True)
        if args.ablations:
            print("ablations (interleaved rounds):", flush=True)
            report["ablations"] = run_ablations(tower, seconds_list, runs)
        if args.stream_compare:
            print("streaming policies (min_frames:feed_budget):", flush=True)
            configs = []
            for item in args.stream_compare.split(","):
                frames, _, budget = item.partition(":")
                configs.append((int(frames), None if budget in ("", "none") else float(budget)))
            report["streaming_compare"] = streaming_compare(tower, configs, 2)
        report["peak"] = rss_mb()
    report["load_average_end"] = load_average()
    print("memory:", json.dumps(report["peak"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
