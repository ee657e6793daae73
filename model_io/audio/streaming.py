"""Encode a clip while it is being recorded (push-to-talk): only the tail is left at key release.

Almost all of Gemma 3n's audio tower looks only backwards, so each part can run as
soon as its inputs are final:

* log-mel frame t reads samples 160 t .. 160 t + 512: final once they have arrived;
* each SSCP convolution (3x3, stride 2, time padded by (0, 2) at the *end*) makes
  output t from input rows 2t..2t+2: final once row 2t+2 exists; the cumulative
  group norm is causal (running sums carried over);
* every conformer block is causal: chunked local attention sees the frame itself
  and 12 past frames (right context 0), the depthwise conv 4 past frames, and the
  rest is frame-wise;
* the reduction keeps frames 0, 4, 8, ...; the embedder is row-wise.

What is *not* causal is the end of the clip, and :meth:`StreamingAudioEncoder.finish`
redoes exactly what the one-shot path does there: the waveform is zero-padded to a
multiple of 128 samples (at least 513), which may complete one or more last mel
frames; the two convolutions then read their end padding of two zero rows; and the
conformer runs the remaining frames.  The mask is all-valid for a single clip, and
chunk boundaries do not matter to the attention (each frame's 12-frame window is
rebuilt from the cached keys/values), so the 189 rows equal
``AudioTower.clip_rows(whole waveform)`` up to float32 rounding (≈1e-7).

Scheduling.  The conformer runs block by block, each block with a queue of input
frames (40 ms each) that it takes whole.  A sweep through the 12 blocks starts when
``min_frames`` frames wait at the first block: fewer frames per sweep mean less left
at release but more passes over the weights, and frames that arrive during a sweep
make the next one larger.  At release the tail catches up with any sweep still under
way (the shallowest queue goes first), so :meth:`~StreamingAudioEncoder.finish` steps
each block once more however the chunks fell.  By default every ``feed`` does all the work
that is final; ``feed_budget`` can cap it at that many seconds per second of audio
the feed brings (at least one block step), leaving the rest to later feeds or
``finish``.  (Measured on 2 cores, a cap of 1.0 did not shorten release-to-rows:
what a capped feed leaves undone, ``finish`` has to do.)
"""

from __future__ import annotations

import time

import numpy as np

from model_io.audio import spec
from model_io.audio.conformer import EncoderState, SubsampleStream, conformer_layer_step, embed_soft
from model_io.audio.features import log_mel_frames, n_complete_frames, prepare_waveform
from model_io.audio.tower import AudioTower, check_samples
from model_io.errors import InputError

DEFAULT_MIN_FRAMES = 12  # ≈0.5 s of audio per block step
DEFAULT_FEED_BUDGET: float | None = None  # no cap: every feed does all the work that is final


class StreamingAudioEncoder:
    """One clip, fed in pieces as it is recorded; :meth:`finish` returns its 189 rows.

    ``feed`` works synchronously in the caller's thread (call it from the thread that
    drains the recorder, not from an audio callback), within ``feed_budget``.  A clip
    holds at most 30 s (480 000 samples): feeding more raises :class:`InputError`
    without consuming anything, so the caller can :meth:`finish` this clip and start
    another.  One thread feeds and finishes an encoder; the tower's lock keeps other
    users of the same tower out while a step runs.
    """

    def __init__(
        self,
        tower: AudioTower,
        *,
        min_frames: int = DEFAULT_MIN_FRAMES,
        feed_budget: float | None = DEFAULT_FEED_BUDGET,
    ) -> None:
        self.tower = tower
        self.min_frames = max(1, int(min_frames))
        self.feed_budget = feed_budget
        self._samples = np.zeros(spec.MAX_SAMPLES, dtype=np.float32)
        self._n_samples = 0
        self._n_mel = 0  # log-mel frames computed so far
        self._subsampler: SubsampleStream | None = None
        self._state: EncoderState | None = None
        self._queues: list[list[np.ndarray]] = []  # per block: input frames not yet through it
        self._rows: list[np.ndarray] = []  # embedded soft rows so far
        self._finished = False

    # ---------------------------------------------------------------- progress

    @property
    def n_samples(self) -> int:
        """Samples fed so far."""
        return self._n_samples

    @property
    def remaining_samples(self) -> int:
        """How many more samples this clip takes (30 s in all)."""
        return spec.MAX_SAMPLES - self._n_samples

    @property
    def frames_encoded(self) -> int:
        """Conformer frames (40 ms each) already through every block."""
        return self._state.frames if self._state is not None else 0

    @property
    def frames_queued(self) -> int:
        """Block steps still owed, in frames (summed over the blocks): the work left for later."""
        return sum(len(a) for queue in self._queues for a in queue)

    @property
    def rows_ready(self) -> int:
        """Soft-token rows already computed (one per 160 ms)."""
        return sum(len(r) for r in self._rows)

    @property
    def finished(self) -> bool:
        return self._finished

    # ---------------------------------------------------------------- feeding

    def feed(self, samples: np.ndarray) -> int:
        """Append 16 kHz mono samples and encode what they make final (within the budget); rows ready."""
        self._check_open()
        wave = check_samples(samples)
        if self._n_samples + wave.size > spec.MAX_SAMPLES:
            raise InputError(
                f"a streamed audio clip holds at most 30 s ({spec.MAX_SAMPLES} samples at 16 kHz); "
                f"{self._n_samples} are in and {wave.size} more came: finish this clip and start another"
            )
        budget = None if self.feed_budget is None else self.feed_budget * wave.size / spec.SAMPLE_RATE
        start = time.perf_counter()
        self._samples[self._n_samples : self._n_samples + wave.size] = wave
        self._n_samples += wave.size
        total = n_complete_frames(self._n_samples)
        mel = log_mel_frames(self._samples[: self._n_samples], self._n_mel, total - self._n_mel)
        self._n_mel = total
        self._advance(mel, final=False, deadline=None if budget is None else start + budget)
        return self.rows_ready

    def finish(self) -> np.ndarray:
        """Complete the clip (end padding, last frames, all queued steps); its 189 rows [189, n_embd]."""
        self._check_open()
        if self._n_samples == 0:
            raise InputError("the audio clip is empty")
        wave = prepare_waveform(self._samples[: self._n_samples])
        total = n_complete_frames(len(wave))
        mel = log_mel_frames(wave, self._n_mel, total - self._n_mel)
        self._n_mel = total
        self._advance(mel, final=True, deadline=None)
        self._finished = True
        real = np.concatenate(self._rows) if self._rows else np.zeros((0, self.tower.n_embd), np.float32)
        self._rows = []
        return self.tower.pad_rows(real)

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("this streamed clip is finished; start a new StreamingAudioEncoder")

    def _advance(self, mel: np.ndarray, final: bool, deadline: float | None) -> None:
        with self.tower.computing() as (weights, team):
            if self._subsampler is None or self._state is None:
                self._subsampler = SubsampleStream(weights.sscp)
                self._state = EncoderState(weights.dims)
                self._queues = [[] for _ in weights.layers]
            if len(mel) or final:
                rows = self._subsampler.push(mel, final=final, team=team)
                if len(rows):
                    self._queues[0].append(rows)
            while (index := self._next_block(final)) is not None:
                queue = self._queues[index]
                x = queue[0] if len(queue) == 1 else np.concatenate(queue)
                self._queues[index] = []
                out = conformer_layer_step(x, weights, self._state, index, team)
                if index + 1 < len(self._queues):
                    self._queues[index + 1].append(out)
                elif len(out):
                    self._rows.append(embed_soft(out, weights, team))
                if deadline is not None and time.perf_counter() >= deadline:
                    break

    def _next_block(self, final: bool) -> int | None:
        """The block to step next, or None when nothing is due.

        While recording: finish the sweep under way (the deepest block holding frames),
        else start one when ``min_frames`` wait at the first block; frames that arrive
        during a sweep make the next sweep larger, so a slow machine takes bigger, more
        efficient steps.  At the end: the shallowest block holding frames, so the tail
        catches up with a sweep still under way and every block steps once more.
        """
        queued = [sum(len(a) for a in queue) for queue in self._queues]
        if final:
            return next((i for i, n in enumerate(queued) if n), None)
        for index in range(len(queued) - 1, 0, -1):
            if queued[index]:
                return index
        return 0 if queued and queued[0] >= self.min_frames else None
