"""Images and audio through the app's engine, against llama.cpp's ``llama-mtmd-cli`` where one exists.

* **Image encode**: the engine's vision tower (llama.cpp's mtmd, driven by the app)
  against ``llama-mtmd-cli`` on the same projector, image and threads, alternating.
  Both are timed warm: mtmd-cli reserves its compute graph at start-up (its default
  warm-up) and the engine's tower is used once before timing.
* **Audio tower**: real-time factor (encode seconds / audio seconds) of the app's
  NumPy conformer for 5 s and 30 s clips.  llama.cpp has no Gemma 3n audio tower, so
  there is no baseline.
* **Push-to-talk**: a 5 s clip read from a WAV file is fed in 100 ms blocks at
  real-time pace to the app's audio encoder (``AudioEncoder.feed_stream``, the
  incremental path the GUI uses while the key is held), then at key release the
  clip is sent through the engine as a transcription request.  Release-to-first-
  token runs from the moment the last block was recorded to the first sampled
  token; the engine finds the clip's rows already computed.  For contrast the same
  is timed for a clip that was not streamed (encoded whole after release).
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model_io.audio import AudioEncoder, decode_audio, spec
from model_io.benchmark.app_engine import EngineDriver
from model_io.benchmark.llama_bench import ToolFailedError
from model_io.benchmark.machine import load_average, run_measured
from model_io.benchmark.memory_stages import measure_memory_stages
from model_io.events import AudioStreamFeed, new_request_id
from model_io.images import load_image
from model_io.media import MediaInput, MediaKind
from model_io.native import NativeModel
from model_io.prompt import ChatMessage
from model_io.settings import LoadSettings, SamplingSettings
from model_io.speech import transcription_request
from model_io.towers import EncoderFactory

MTMD_ENCODED = re.compile(r"(?:slice encoded|batch encoding done) in (\d+) ms")
IMAGE_PROMPT = "Describe this image."
Progress = Callable[[str], None]


@dataclass(frozen=True)
class MediaPlan:
    rounds: int = 2
    audio_seconds: tuple[float, ...] = (5.0, 30.0)
    audio_runs: int = 3
    ptt_seconds: float = 5.0
    ptt_runs: int = 3
    block_ms: float = 100.0


@dataclass
class MediaResult:
    image_app_ms: list[float] = field(default_factory=list)
    image_app_first_ms: float | None = None
    image_mtmd_ms: list[float] = field(default_factory=list)
    image_mtmd_peak_rss: int | None = None
    audio_rtf: dict[str, dict[str, Any]] = field(default_factory=dict)
    push_to_talk: dict[str, Any] = field(default_factory=dict)
    memory_stages: list[dict[str, Any]] = field(default_factory=list)
    load_average: list[tuple[float, float, float] | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def speech_like_clip(seconds: float, seed: int = 0) -> np.ndarray:
    """A gliding harmonic tone with syllable-rate amplitude plus noise: speech-like load for the tower."""
    n = round(seconds * spec.SAMPLE_RATE)
    t = np.arange(n) / spec.SAMPLE_RATE
    rng = np.random.default_rng(seed)
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / spec.SAMPLE_RATE
    envelope = (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    voice = sum(np.sin(k * phase) / k for k in range(1, 6)) * envelope
    return np.asarray(0.2 * voice + 0.01 * rng.standard_normal(n), dtype=np.float32)


def write_test_image(path: Path, seed: int = 0) -> Path:
    """A 1200x900 noise photo: the tower's cost does not depend on content, only on the 768x768 input."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (900, 1200, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def mtmd_cli_encode_ms(
    cli: Path, text_model: Path, mmproj: Path, image: Path, threads: int
) -> tuple[float, int | None]:
    """llama-mtmd-cli's own encode time for one image (from its log) and its peak RSS."""
    command = [str(cli), "-m", str(text_model), "--mmproj", str(mmproj), "--image", str(image),
               "-p", IMAGE_PROMPT, "-n", "1", "-t", str(threads), "-c", "2048"]  # fmt: skip
    run = run_measured(command, timeout=1800.0)
    match = MTMD_ENCODED.search(run.stdout + run.stderr)
    if run.returncode != 0 or not match:
        tail = " | ".join(run.stderr.strip().splitlines()[-3:])
        raise ToolFailedError(f"llama-mtmd-cli printed no encode time (status {run.returncode}): {tail}")
    return float(match.group(1)), run.peak_rss_bytes


def media_factories(audio: AudioEncoder, threads: int) -> dict[MediaKind, EncoderFactory]:
    """The app's towers, with the audio encoder shared so the benchmark can stream into it."""

    def vision(path: Path, model: NativeModel) -> Any:
        from model_io.vision import VisionEncoder

        return VisionEncoder(path, model, threads, end_of_image="embedding")

    return {"image": vision, "audio": lambda _path, _model: audio}


def measure_media(
    text_model: Path,
    mmproj: Path,
    load: LoadSettings,
    plan: MediaPlan,
    mtmd_cli: Path | None,
    progress: Progress,
) -> MediaResult:
    """Image encode, audio RTF and push-to-talk latency on one text model + projector."""
    result = MediaResult()
    with tempfile.TemporaryDirectory(prefix="gemma-desk-bench-") as tmp:
        image = write_test_image(Path(tmp) / "photo.png")
        clip = speech_like_clip(plan.ptt_seconds, seed=1)
        # first, while nothing else in the process holds large buffers: RSS is the process's
        result.memory_stages = measure_memory_stages(text_model, mmproj, load, image, clip, progress)
        _encode_media(text_model, mmproj, load, plan, mtmd_cli, result, progress, image, clip)
    return result


def _encode_media(
    text_model: Path,
    mmproj: Path,
    load: LoadSettings,
    plan: MediaPlan,
    mtmd_cli: Path | None,
    result: MediaResult,
    progress: Progress,
    image: Path,
    clip: np.ndarray,
) -> None:
    audio = AudioEncoder(mmproj, None)
    audio.tower.load()
    with EngineDriver(
        text_model, load, mmproj=mmproj, tower_factories=media_factories(audio, load.threads)
    ) as driver:
        _image_rounds(driver, text_model, mmproj, image, load.threads, plan, mtmd_cli, result, progress)
        for seconds in plan.audio_seconds:
            result.audio_rtf[f"{seconds:g}s"] = audio_rtf(audio, seconds, plan.audio_runs)
            progress(f"audio tower {seconds:g} s clip: " + _rtf_text(result.audio_rtf[f"{seconds:g}s"]))
        clip_path = image.parent / "clip.wav"
        _write_wav(clip_path, clip)
        result.push_to_talk = push_to_talk(driver, clip_path, plan, result.notes)
        progress("push-to-talk: " + _ptt_text(result.push_to_talk))
    audio.release()


def _image_rounds(
    driver: EngineDriver,
    text_model: Path,
    mmproj: Path,
    image: Path,
    threads: int,
    plan: MediaPlan,
    mtmd_cli: Path | None,
    result: MediaResult,
    progress: Progress,
) -> None:
    media = load_image(image)
    messages = (ChatMessage("user", (media, IMAGE_PROMPT)),)
    sampling = SamplingSettings(seed=0)
    result.image_app_first_ms = driver.run(messages, sampling, max_tokens=1).stats.image_encode_ms
    progress(f"image: first encode (tower cold) {result.image_app_first_ms:.0f} ms")
    for index in range(plan.rounds):
        for side in ("app", "mtmd") if index % 2 == 0 else ("mtmd", "app"):
            if side == "app":
                result.image_app_ms.append(driver.run(messages, sampling, max_tokens=1).stats.image_encode_ms)
                progress(f"image round {index + 1}: app {result.image_app_ms[-1]:.0f} ms")
            elif mtmd_cli is not None:
                ms, peak = mtmd_cli_encode_ms(mtmd_cli, text_model, mmproj, image, threads)
                result.image_mtmd_ms.append(ms)
                result.image_mtmd_peak_rss = max(result.image_mtmd_peak_rss or 0, peak or 0) or None
                progress(f"image round {index + 1}: llama-mtmd-cli {ms:.0f} ms")
        result.load_average.append(load_average())


def audio_rtf(encoder: AudioEncoder, seconds: float, runs: int) -> dict[str, Any]:
    """Encode seconds per audio second of the app's tower, after one warm-up encode."""
    wave = speech_like_clip(seconds)
    encoder.tower.clip_rows(wave)
    times = []
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        encoder.tower.clip_rows(wave)
        times.append(time.perf_counter() - started)
    return {
        "clip_s": seconds,
        "rtf_min": round(min(times) / seconds, 4),
        "rtf_median": round(statistics.median(times) / seconds, 4),
        "encode_s": [round(t, 3) for t in times],
        "threads": encoder.tower.threads,
        "load_average": load_average(),
    }


def push_to_talk(driver: EngineDriver, clip_path: Path, plan: MediaPlan, notes: list[str]) -> dict[str, Any]:
    """Release-to-first-token with the clip streamed to the engine while "speaking", and without."""
    wave = decode_audio(clip_path)
    sampling = SamplingSettings(seed=0)
    total, tail, first_token, one_shot = [], [], [], []
    for run in range(max(1, plan.ptt_runs) + 1):  # run 0 warms the streaming path up, untimed
        release = _speak(driver, wave, plan.block_ms)
        timing = driver.run(transcription_request(MediaInput("audio", wave)), sampling, max_tokens=1)
        if run == 0:
            continue
        if timing.stats.audio_encode_ms > 0.1 * 1000 * len(wave) / spec.SAMPLE_RATE:
            notes.append(f"push-to-talk run {run}: the engine encoded the streamed clip again")
        ttft = timing.stats.time_to_first_token_ms / 1000.0
        total.append(timing.finished_at - release)  # max_tokens=1: stats follow the first token at once
        first_token.append(ttft)
        tail.append(timing.finished_at - ttft - release)
        other = MediaInput("audio", speech_like_clip(plan.ptt_seconds, seed=100 + run))
        whole = driver.run(transcription_request(other), sampling, max_tokens=1)
        one_shot.append(whole.finished_at - whole.submitted_at)
    return {
        "clip_s": round(len(wave) / spec.SAMPLE_RATE, 3),
        "block_ms": plan.block_ms,
        "release_to_first_token_s": _stats(total),
        "release_to_request_start_s": _stats(tail),
        "request_start_to_first_token_s": _stats(first_token),
        "not_streamed_release_to_first_token_s": _stats(one_shot),
        "load_average": load_average(),
    }


def _speak(driver: EngineDriver, wave: np.ndarray, block_ms: float) -> float:
    """Feed ``wave`` to the engine as the GUI does while the key is held; returns the release instant.

    A block is handed over once it has been "recorded" (real-time pace from the first
    sample); the last one goes at release, marked final, as the GUI sends the tail.
    """
    stream_id = new_request_id()
    block = max(1, round(block_ms * spec.SAMPLE_RATE / 1000))
    started = time.perf_counter()
    release = started + len(wave) / spec.SAMPLE_RATE
    fed = 0
    while True:
        recorded = min(len(wave), (fed // block + 1) * block)
        time.sleep(max(0.0, started + recorded / spec.SAMPLE_RATE - time.perf_counter()))
        final = recorded == len(wave)
        driver.engine.feed_audio(AudioStreamFeed(stream_id, wave[fed:recorded], final=final))
        fed = recorded
        if final:
            return release


def _write_wav(path: Path, wave: np.ndarray) -> None:
    import soundfile

    soundfile.write(str(path), wave, spec.SAMPLE_RATE, subtype="FLOAT")


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "min": round(min(values), 4),
        "median": round(statistics.median(values), 4),
        "samples": [round(v, 4) for v in values],
    }


def _rtf_text(entry: dict[str, Any]) -> str:
    best, median = entry["rtf_min"], entry["rtf_median"]
    return f"RTF {best:.3f} best / {median:.3f} median (load {entry['load_average']})"


def _ptt_text(entry: dict[str, Any]) -> str:
    return (
        f"release → first token {entry['release_to_first_token_s']['median']:.2f} s median "
        f"(stream tail {entry['release_to_request_start_s']['median']:.2f} s + first token "
        f"{entry['request_start_to_first_token_s']['median']:.2f} s; not streamed "
        f"{entry['not_streamed_release_to_first_token_s']['median']:.2f} s)"
    )
