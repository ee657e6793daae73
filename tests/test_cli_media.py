"""The CLI with images and audio: real towers (mtmd vision, NumPy audio) on the tiny synthetic models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

SR = 16_000


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app", *args]
    return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=timeout)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny text model and its two-tower projector, written by `models synth --mmproj both`."""
    out = tmp_path_factory.mktemp("synth")
    result = cli("models", "synth", "--preset", "tiny", "--mmproj", "both", "--out", str(out))
    assert result.returncode == 0, result.stderr
    text, projector = (Path(line) for line in result.stdout.split())
    return text, projector


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(1)
    picture = folder / "picture.png"
    Image.fromarray(rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)).save(picture)
    tone = folder / "tone.flac"
    t = np.arange(int(2.5 * 44_100)) / 44_100
    sf.write(tone, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 44_100)
    long_audio = folder / "long.wav"
    noise = (rng.standard_normal(SR * 40) * 0.2).astype(np.float32)
    noise[SR * 27 : SR * 28] = 0.0  # a pause near the 30 s boundary
    sf.write(long_audio, noise, SR)
    broken = folder / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return {"picture": picture, "tone": tone, "long": long_audio, "broken": broken}


def events(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_ask_with_image_and_audio_in_one_turn(models: tuple[Path, Path], media: dict[str, Path]) -> None:
    text, projector = models
    args = [
        "ask",
        "--model",
        str(text),
        "--mmproj",
        str(projector),
        "--temp",
        "0",
        "--max-tokens",
        "4",
        "--json",
    ]
    result = cli(*args, "--image", str(media["picture"]), "--audio", str(media["tone"]), "Describe both")
    stats = next(e for e in events(result) if e["event"] == "stats")
    assert stats["image_encode_ms"] > 0 and stats["audio_encode_ms"] > 0  # type: ignore[operator]
    # 256 image rows + 189 audio rows + the text around them
    assert stats["prompt_tokens"] > 256 + 189  # type: ignore[operator]


def test_projector_is_found_beside_the_model(models: tuple[Path, Path], media: dict[str, Path]) -> None:
    text, _ = models
    result = cli("ask", "--model", str(text), "--max-tokens", "2", "--image", str(media["picture"]), "What?")
    assert result.returncode == 0, result.stderr


def test_transcribe_streams_clip_by_clip(models: tuple[Path, Path], media: dict[str, Path]) -> None:
    text, projector = models
    result = cli(
        "transcribe",
        "--model",
        str(text),
        "--mmproj",
        str(projector),
        "--max-tokens",
        "3",
        "--json",
        str(media["long"]),
    )
    done = [e for e in events(result) if e["event"] == "done"]
    assert [(e["clip"], e["clips"]) for e in done] == [(1, 2), (2, 2)]


def test_translate_needs_a_known_language(models: tuple[Path, Path], media: dict[str, Path]) -> None:
    text, projector = models
    ok = cli(
        "translate",
        "--to",
        "Spanish",
        "--model",
        str(text),
        "--mmproj",
        str(projector),
        "--max-tokens",
        "3",
        str(media["tone"]),
    )
    assert ok.returncode == 0, ok.stderr
    bad = cli("translate", "--to", "Klingon", "--model", str(text), str(media["tone"]))
    assert bad.returncode == 2 and "unknown language" in bad.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--image", "{broken}"), "broken.png"),
        (("--image", "/nonexistent/x.png"), "x.png"),
        (("--audio", "{picture}"), "picture.png"),
    ],
)
def test_bad_media_is_a_one_line_input_error(
    models: tuple[Path, Path], media: dict[str, Path], args: tuple[str, str], fragment: str
) -> None:
    text, projector = models
    option, value = args[0], args[1].format(**{k: str(v) for k, v in media.items()})
    result = cli("ask", "--model", str(text), "--mmproj", str(projector), option, value, "x")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and fragment in result.stderr


def test_media_without_any_projector_is_explained(
    media: dict[str, Path], tiny_model: Path, tmp_path: Path
) -> None:
    alone = tmp_path / "model.gguf"
    alone.symlink_to(tiny_model)  # a folder with no projector beside the model
    result = cli("ask", "--model", str(alone), "--image", str(media["picture"]), "x")
    assert result.returncode == 2 and "--mmproj" in result.stderr
