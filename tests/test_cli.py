"""The gemma-desk command line, run as a user would run it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gemma-desk: error:") and fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_ask_streams_text(tiny_model: Path) -> None:
    result = cli("ask", "--model", str(tiny_model), "--temp", "0", "--max-tokens", "6", "Hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and result.stderr == ""


def test_ask_json_prints_one_object_per_event(tiny_model: Path) -> None:
    result = cli("ask", "--model", str(tiny_model), "--seed", "7", "--max-tokens", "5", "--json", "Hi")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[-2:] == ["stats", "done"] and set(kinds[:-2]) == {"delta"}
    assert len({e["request_id"] for e in events}) == 1
    assert events[-2]["generated_tokens"] == 5 and events[-1]["finish_reason"] == "length"


def test_ask_same_seed_same_answer(tiny_model: Path) -> None:
    runs = [
        cli("ask", "--model", str(tiny_model), "--seed", "3", "--max-tokens", "8", "Q").stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and runs[0].strip()


def test_model_from_environment(tiny_model: Path) -> None:
    result = cli("ask", "--temp", "0", "--max-tokens", "2", "Hi", env={"GEMMA_DESK_MODEL": str(tiny_model)})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("ask",), 2, "required: prompt"),
        (("ask", "--max-tokens", "zero", "x"), 2, "invalid int"),
        (("ask", "--model", "/nonexistent/model.gguf", "x"), 3, "not found"),
        (("ask", "x"), 2, "pass --model"),
        (("ask", "--ctx", "100", "--model", "/nonexistent.gguf", "x"), 2, "context size"),
        (("models", "inspect", "/nonexistent.gguf"), 3, "not found"),
        (("models", "synth", "--preset", "huge", "--out", "/tmp"), 2, "unknown synthetic preset"),
        ((), 2, "desktop window"),
    ],
)
def test_errors_are_one_line_with_exit_codes(args: tuple[str, ...], code: int, fragment: str) -> None:
    headless = {"DISPLAY": "", "WAYLAND_DISPLAY": "", "QT_QPA_PLATFORM": ""}  # no args would open the window
    assert_one_line_error(cli(*args, env=headless), code, fragment)


def test_corrupt_model_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"<html>not a model</html>" * 100)
    assert_one_line_error(cli("ask", "--model", str(bad), "x"), 3, "bad.gguf")


def test_inspect_text_and_json(tiny_model: Path) -> None:
    text = cli("models", "inspect", str(tiny_model))
    assert text.returncode == 0 and "gemma3n" in text.stdout and "effective" in text.stdout
    data = json.loads(cli("models", "inspect", "--json", str(tiny_model)).stdout)
    assert data["architecture"] == "gemma3n" and data["kind"] == "text"
    assert data["n_params"] == data["n_params_effective"] + data["n_params_ple"] + 64 * 262_400


def test_inspect_real_gemma3(gemma3_270m: Path) -> None:
    data = json.loads(cli("models", "inspect", "--json", str(gemma3_270m)).stdout)
    assert data["architecture"] == "gemma3" and data["quant"] == "Q4_K_M"


def test_synth_writes_a_loadable_model(tmp_path: Path) -> None:
    result = cli("models", "synth", "--preset", "tiny", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = Path(result.stdout.strip())
    assert written.parent == tmp_path and written.exists()
    ask = cli("ask", "--model", str(written), "--temp", "0", "--max-tokens", "2", "Hi")
    assert ask.returncode == 0, ask.stderr
