"""Shared pieces of the hostile-input suites (tests/test_fuzz_*.py).

Profiles: CI runs a fixed, derandomized number of examples per property (the same inputs every run,
so a failure reproduces); ``GEMMA_DESK_FUZZ=long`` runs 20x as many, randomized, for a soak run
(``GEMMA_DESK_FUZZ=long pytest tests/test_fuzz_*.py``).  Hypothesis keeps no example database in
either profile, so runs never depend on earlier ones.

Every hostile input must end in one specific, one-line error within a time bound.  Bounds are
generous safety nets against hangs (seconds for inputs of a few KB), not speed targets; inputs that
could blow up memory run in a child process whose peak RSS is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

from model_io.errors import GemmaDeskError

REPO = Path(__file__).resolve().parents[1]
# A child's memory is read from ru_maxrss and /proc the Linux way (macOS counts bytes; Windows has neither).
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="measures a child's memory the Linux way")
FUZZ_ENV = "GEMMA_DESK_FUZZ"
LONG = os.environ.get(FUZZ_ENV, "").strip().lower() == "long"

F = TypeVar("F", bound=Callable[..., Any])


def fuzz_settings(examples: int) -> Callable[[F], F]:
    """``examples`` per property in CI (derandomized); 20x and random with GEMMA_DESK_FUZZ=long."""
    return settings(
        max_examples=examples * 20 if LONG else examples,
        derandomize=not LONG,
        database=None,
        deadline=None,  # the per-call bound below is explicit and generous instead
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


@contextmanager
def within(seconds: float, what: str) -> Iterator[None]:
    """Fail if the block takes longer than ``seconds`` (a hang guard, far above normal times)."""
    started = time.perf_counter()
    yield
    elapsed = time.perf_counter() - started
    assert elapsed < seconds, f"{what} took {elapsed:.1f} s (bound {seconds} s)"


def check_user_error(
    error: BaseException, expected: type[GemmaDeskError] | tuple[type[GemmaDeskError], ...], name: str
) -> None:
    """A user-facing error of the right family: one line, naming the file."""
    assert isinstance(error, expected), f"{type(error).__name__}: {error}"
    message = str(error)
    assert message and "\n" not in message, repr(message)
    assert name in message, message
    assert "Traceback" not in message


def run_bounded(code: str, *, timeout: float = 60) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter and return the JSON it prints last, plus its memory peak.

    ``code`` must define ``def case() -> dict`` and may import anything; the harness measures the
    peak resident size (``ru_maxrss``) before and after ``case()`` and adds ``rss_growth_mb``.
    A crash (signal) or a hang (timeout) fails the calling test with the child's stderr.
    """
    harness = textwrap.dedent(
        """
        import json, resource, sys
        {code}
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = case()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["rss_growth_mb"] = (after - before) / 1024
        print(json.dumps(result))
        """
    ).format(code=textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    try:
        done = subprocess.run(
            [sys.executable, "-c", harness], capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the case did not finish within {timeout} s (a hang)")
    assert done.returncode == 0, f"child failed with {done.returncode}: {done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
