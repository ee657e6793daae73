"""Hostile command lines: every combination ends in the documented exit code with one line on stderr.

Hypothesis assembles ``ask``, ``transcribe``, ``translate`` and ``models`` command lines from
hostile values (numbers that are not numbers or out of range, missing files, folders, FIFOs and
devices where files belong, garbage and truncated models, a projector given as the model, names
that are not UTF-8 or too long, symlink loops) and runs ``app.cli.main`` in-process.  Exit codes
(README): 0 ok, 2 bad arguments or input, 3 model problem; 1 (internal error) is a bug.  No model
here is loadable, so nothing ever reaches llama.cpp's decoder; the few combinations that do need a
real model (thread counts, seeds) run as subprocesses at the end.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fuzz_support import REPO, fuzz_settings, within
from gguf_fixtures import truncated_copy, write_tiny_clip, write_tiny_llama
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from app.cli import main

BOUND_SECONDS = 20.0  # in-process runs take milliseconds; a bad model starts (and stops) an engine
INTEGERS = ("0", "1", "-1", "511", "512", "513", "32768", "32769", "1e3", "nan", "", "x", "9" * 20, "0x10")
FLOATS = ("0", "1", "5", "5.01", "-0.0", "nan", "inf", "-inf", "1e-30", "x", "")
LANGUAGES = ("English", "es", "", "Klingon", "xx", "EN", "français", "\u0000".strip() or "zz")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths a user (or a typo) can hand the CLI; none of them is a loadable text model."""
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "empty.gguf").write_bytes(b"")
    (folder / "garbage.gguf").write_bytes(os.urandom(4096))
    (folder / "page.gguf").write_bytes(b"<!doctype html><html>Sign in</html>")
    llama = write_tiny_llama(folder / "llama.gguf")
    truncated_copy(llama, folder / "cut.gguf", llama.stat().st_size // 2)
    write_tiny_clip(folder / "projector-mmproj.gguf")
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "fifo.wav")  # opening it for reading would block forever
    else:
        (folder / "fifo.wav").write_bytes(b"")
    (folder / "folder.gguf").mkdir()
    try:
        (folder / "loop").symlink_to(folder / "loop")
    except OSError:  # Windows without the symlink privilege
        (folder / "loop").write_bytes(b"loop")
    Image.new("RGB", (16, 16), (200, 10, 10)).save(folder / "real.png")
    sf.write(folder / "real.wav", np.zeros(1600, np.float32), 16000)
    (folder / "not-utf8.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    bad_name = os.fsdecode(bytes(folder / "not-utf8.png").replace(b"not-utf8", b"n\xffo\xfe"))
    os.replace(folder / "not-utf8.png", bad_name)
    return {
        "missing": str(folder / "missing.gguf"),
        "empty": str(folder / "empty.gguf"),
        "garbage": str(folder / "garbage.gguf"),
        "html": str(folder / "page.gguf"),
        "cut": str(folder / "cut.gguf"),
        "projector": str(folder / "projector-mmproj.gguf"),
        "fifo": str(folder / "fifo.wav"),
        "device": "/dev/zero",
        "folder": str(folder / "folder.gguf"),
        "loop": str(folder / "loop"),
        "through_file": str(folder / "real.png" / "child.gguf"),
        "long": str(folder / ("x" * 300 + ".gguf")),
        "image": str(folder / "real.png"),
        "audio": str(folder / "real.wav"),
        "non_utf8": bad_name,
        "blank": "",
    }


def command_lines(paths: dict[str, str]) -> st.SearchStrategy[list[str]]:
    path = st.sampled_from(sorted(paths.values()))
    model_path = st.sampled_from([v for k, v in paths.items() if k not in ("image", "audio")])

    def option(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
        return values.map(lambda value: [name, value])

    common = [
        option("--model", model_path),
        option("--mmproj", path),
        option("--ctx", st.sampled_from(INTEGERS)),
        option("--threads", st.sampled_from(INTEGERS)),
        option("--max-tokens", st.sampled_from(INTEGERS)),
        st.just(["--json"]),
    ]
    ask_only = [
        option("--image", path),
        option("--audio", path),
        option("--seed", st.sampled_from(INTEGERS)),
        option("--temp", st.sampled_from(FLOATS)),
        option("--system", st.sampled_from(("", "be brief", "x" * 5000))),
        st.just(["--stats"]),
        st.just(["--unknown-option"]),
    ]

    def assemble(head: list[str], options: list[list[str]], tail: list[str]) -> list[str]:
        return head + [word for pair in options for word in pair] + tail

    prompts = st.sampled_from(("hi", "", "-x", "--", "\u00e9t\u00e9 🙂"))
    ask = st.builds(
        assemble,
        st.just(["ask"]),
        st.lists(st.one_of(*common, *ask_only), max_size=5),
        prompts.map(lambda p: [p]),
    )
    speech_options = st.lists(
        st.one_of(*common, option("--language", st.sampled_from(LANGUAGES))), max_size=4
    )
    transcribe = st.builds(assemble, st.just(["transcribe"]), speech_options, path.map(lambda p: [p]))
    translate = st.builds(
        assemble,
        st.just(["translate"]),
        st.lists(st.one_of(*common, option("--to", st.sampled_from(LANGUAGES))), max_size=4),
        path.map(lambda p: [p]),
    )
    models = st.one_of(
        st.builds(lambda p, j: ["models", "inspect", p, *j], path, st.sampled_from(([], ["--json"]))),
        st.builds(
            lambda p, j: ["models", "import", p, *j], path, st.sampled_from(([], ["--json"], ["--link"]))
        ),
        st.builds(
            lambda preset, p: ["models", "synth", "--preset", preset, "--out", p],
            st.sampled_from(("huge", "", "TINY ", "e3b")),
            path,
        ),
        st.builds(lambda p: ["models", "discover", "--add-folder", p], path),
        st.sampled_from(
            (
                ["models"],
                ["models", "nope"],
                ["models", "list", "--json"],
                ["--help"],
                ["ask", "--help"],
                ["nope"],
            )
        ),
    )
    return st.one_of(ask, transcribe, translate, models)  # fmt: skip


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) with stdout and stderr captured as bytes (main lets non-UTF-8 names through)."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # strict, like a UTF-8 locale's stdout
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")  # like sys.stderr
    with within(BOUND_SECONDS, f"gemma-desk {argv!r}"), redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    out.flush()
    err.flush()
    return code, _text(out), _text(err)


def _text(stream: io.TextIOWrapper) -> str:
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8", "surrogateescape")


def test_hostile_command_lines(hostile: dict[str, str]) -> None:
    seen: set[int] = set()

    @fuzz_settings(300)
    @given(command_lines(hostile))
    def check(argv: list[str]) -> None:
        code, _out, err = run_cli(argv)
        seen.add(code)
        assert code in (0, 2, 3), f"exit {code} for {argv!r}: {err}"
        assert "Traceback" not in err and "internal error" not in err, err
        if code:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("gemma-desk: error: "), (argv, err)
        else:
            assert "error" not in err, (argv, err)

    check()
    assert {2, 3} <= seen


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--threads", "100000"], 2, "thread count must be between 0 (automatic) and 512"),
        (["--threads", "-3"], 2, "thread count"),
        (["--max-tokens", "0"], 2, "--max-tokens must be at least 1"),
        (["--temp", "5.5"], 2, "temperature must be between 0 and 5"),
        (["--seed", "9" * 30], 0, ""),  # wider than llama.cpp's uint32 seed: must still answer
    ],
)
def test_extreme_numbers_with_a_real_model(
    tiny_model: Path, args: list[str], code: int, fragment: str
) -> None:
    """Values argparse accepts and a real model behind them: 100,000 threads used to crash llama.cpp."""
    argv = [sys.executable, "-m", "app", "ask", "--model", str(tiny_model), "--max-tokens", "2", *args, "hi"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert done.returncode == code, done.stderr
    if code:
        assert len(done.stderr.strip().splitlines()) == 1 and fragment in done.stderr, done.stderr
    else:
        assert done.stderr.strip() == "" and done.stdout.strip()


def test_non_utf8_file_names_round_trip_through_a_strict_locale(
    hostile: dict[str, str], tmp_path: Path
) -> None:
    """The name comes back byte for byte (stdout) or escaped (stderr); never an internal error."""
    projector = Path(hostile["projector"]).read_bytes()
    name = bytes(tmp_path) + b"/proj-\xff\xfe.gguf"
    with open(name, "wb") as handle:
        handle.write(projector)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    shown = subprocess.run(
        [sys.executable, "-m", "app", "models", "inspect", name],
        capture_output=True,
        env=env,
        timeout=60,
        cwd=REPO,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(b"proj-\xff\xfe.gguf: Tiny Projector")
    refused = subprocess.run(
        [sys.executable, "-m", "app", "ask", "--model", name, "hi"],
        capture_output=True,
        env=env,
        timeout=60,
        cwd=REPO,
    )
    assert refused.returncode == 3
    shown_name = os.fsdecode(name).encode("utf-8", "backslashreplace").decode()
    assert refused.stderr.decode().strip().splitlines() == [
        f"gemma-desk: error: {shown_name}: this is a vision/audio projector (mmproj), not a language model; "
        "open a text model and pass this file as its mmproj"
    ]
