"""Push-to-talk streaming inside the engine: how long after key release the clip's rows are ready.

Loads the full-size synthetic E2B text model and audio projector in the app's :class:`Engine`, feeds a
speech-like clip in 100 ms blocks at real-time pace as the GUI does while the key is held, and times
every ``AudioEncoder.feed_stream`` call the engine makes (each is one tower step over what is queued).
Printed per run: release -> rows ready, how many calls, the slow ones (tower steps), and when the
last call started relative to release (a positive value is backlog left when the key went up).
Run 0 includes loading the tower.

    flock /tmp/gemma-desk-bigjob.lock python tools/probe_stream_engine.py [--runs 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import numpy as np

    from model_io.audio import encoder as audio_encoder
    from model_io.benchmark.media_bench import speech_like_clip
    from model_io.engine import Engine, EventQueue
    from model_io.events import AudioStreamFeed, LoadRequest, ModelLoaded, new_request_id
    from model_io.settings import LoadSettings
    from model_io.synth.mmproj import cached_mmproj
    from model_io.synth.writer import cached_text_model

    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    calls: list[tuple[float, float, bool]] = []  # (start, duration, final)
    real = audio_encoder.AudioEncoder.feed_stream

    def timed(self: audio_encoder.AudioEncoder, stream_id: int, samples: np.ndarray, *, final: bool,
              discard: bool = False) -> None:  # fmt: skip
        started = time.perf_counter()
        real(self, stream_id, samples, final=final, discard=discard)
        calls.append((started, time.perf_counter() - started, final))

    audio_encoder.AudioEncoder.feed_stream = timed  # type: ignore[method-assign]
    events = EventQueue()
    engine = Engine(events)
    load = LoadRequest(cached_text_model("e2b"), LoadSettings(n_threads=2), mmproj_path=cached_mmproj("e2b"))
    engine.load(load)
    if not isinstance(list(events.events_for(load.request_id, timeout=600))[-1], ModelLoaded):
        raise SystemExit("the model did not load")
    wave = speech_like_clip(args.seconds, seed=1)
    block = 1600
    try:
        for run in range(args.runs):
            calls.clear()
            stream_id, started = new_request_id(), time.perf_counter()
            for first in range(0, len(wave), block):
                time.sleep(max(0.0, started + (first + block) / 16_000 - time.perf_counter()))
                final = first + block >= len(wave)
                engine.feed_audio(AudioStreamFeed(stream_id, wave[first : first + block], final=final))
            release = time.perf_counter()
            while not (calls and calls[-1][2]):
                time.sleep(0.005)
            last_start, last_duration, _ = calls[-1]
            steps = [round(duration, 2) for _, duration, _ in calls if duration > 0.05]
            print(
                f"run {run}: release -> rows {last_start + last_duration - release:.2f} s; "
                f"{len(calls)} calls, "
                f"tower steps {steps}; last call began {last_start - release:+.2f} s after release",
                flush=True,
            )
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
