"""The mmproj builder against the local fake hub serving a synthetic sharded bf16 Gemma 3n checkpoint.

The checkpoint is made from a projector the synthetic writer produced (tests/hf_checkpoint.py),
so the built file must have that projector's exact tensor table and metadata, and values equal
to the bfloat16 checkpoint converted independently here.  Then the real engine answers an image
and an audio question with it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import pytest
from fake_hub import FakeHub, Request, isolate_from_the_real_hub
from gguf import GGMLQuantizationType
from hf_checkpoint import TEXT_ONLY_SHARD, Checkpoint, bf16_to_f32, make_checkpoint, synthetic_projector

from app.cli import main
from model_io import download
from model_io.download import AccessDeniedError, DiskSpaceError, DownloadCancelled, DownloadError
from model_io.errors import InputError, ModelFileError, UnsupportedModelError
from model_io.gguf_check import validate_gguf
from model_io.mmproj_build import BuildProgress, build_mmproj, builder, checkpoint, default_output_name, names
from model_io.mmproj_build.convert import convert
from model_io.mmproj_build.output import PartialBuild, journal_path
from model_io.paths import models_dir
from model_io.synth.audio_tower import audio_tensor_plan
from model_io.synth.vision_tower import vision_tensor_plan

REPO = "google/gemma-3n-E2B-it"
Q = GGMLQuantizationType
BUILD_KEYS = ("general.name", "gemma_desk.")


@dataclass(frozen=True)
class Source:
    projector: Path  # what the synthetic writer made; the checkpoint holds its tensors in bf16
    checkpoint: Checkpoint


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    folder = tmp_path_factory.mktemp("mmproj-source")
    projector = synthetic_projector(folder / "synthetic-mmproj.gguf")
    return Source(projector, make_checkpoint(projector))


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real token or endpoint, quick retries, small pieces (so one tower needs several requests)."""
    isolate_from_the_real_hub(monkeypatch, tmp_path)
    monkeypatch.setattr(checkpoint, "RETRY_DELAY", 0.01)
    monkeypatch.setattr(builder, "PIECE_BYTES", 64 << 10)


@pytest.fixture
def hub(source: Source) -> Iterator[FakeHub]:
    with FakeHub(lifetime=120) as fake:
        serve(fake, source.checkpoint.files)
        yield fake


def serve(hub: FakeHub, files: dict[str, bytes], repo: str = REPO, *, gated: bool = False) -> None:
    added = hub.add_repo(repo, files, gated=gated)
    for name in ("config.json", "model.safetensors.index.json"):
        if name in added.files:
            added.files[name].lfs = False  # small git files on the real hub: no CDN redirect


def build(hub: FakeHub, out: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    return build_mmproj(REPO, out, endpoint=hub.url, **kwargs)  # type: ignore[arg-type]


def shard_of(ck: Checkpoint, request: Request) -> str:
    digest = request.path.removeprefix("/cdn/")
    return next(name for name, data in ck.files.items() if hashlib.sha256(data).hexdigest() == digest)


def requested(ck: Checkpoint, requests: list[Request]) -> list[tuple[str, int, int]]:
    """(shard, first, last+1) of every range GET to the CDN."""
    out = []
    for r in requests:
        if r.server == "cdn" and r.method == "GET":
            assert r.range is not None, f"a whole-file GET of {shard_of(ck, r)}"
            first, last = r.range.removeprefix("bytes=").split("-")
            out.append((shard_of(ck, r), int(first), int(last) + 1))
    return out


def tower_ranges(ck: Checkpoint, shard: str) -> list[tuple[int, int]]:
    return sorted(r for name, r in ck.ranges(shard).items() if names.tower_of(name) is not None)


def tower_total(ck: Checkpoint) -> int:
    return sum(b - a for s in ck.files if s.endswith(".safetensors") for a, b in tower_ranges(ck, s))


def covered(ranges: list[tuple[int, int]], first: int, end: int) -> bool:
    """``[first, end)`` lies entirely inside the union of ``ranges``."""
    position = first
    for begin, stop in ranges:
        if begin <= position < stop:
            position = stop
        if position >= end:
            return True
    return position >= end


def expected_bytes(ck: Checkpoint, name: str, qtype: str) -> bytes:
    """Independent conversion: bfloat16 → exact float32 → float64 → the stored type (numpy's RNE)."""
    values = bf16_to_f32(ck.bf16[name]).astype(np.float64)
    return values.astype({"F16": "<f2", "F32": "<f4"}[qtype]).tobytes()


def kv_without_build_keys(path: Path) -> dict[str, object]:
    kv = validate_gguf(path).kv
    return {k: v for k, v in kv.items() if not k.startswith(BUILD_KEYS)}


# -- names and conversion (no hub) -----------------------------------------------------------------


# conversion/gemma.py Gemma3nVisionAudioModel.block_tensor_mapping: the converter maps
# model.vision_tower.timm_model.blocks.{bid}.{sid}.<suffix> to v.blk.{bid}.{sid}.<suffix> for these.
CONVERTER_BLOCK_SUFFIXES = {
    "conv_exp.weight", "bn1.weight", "conv_pwl.weight", "bn2.weight",
    "dw_start.conv.weight", "dw_start.bn.weight", "dw_mid.conv.weight", "dw_mid.bn.weight",
    "pw_exp.conv.weight", "pw_exp.bn.weight", "pw_proj.conv.weight", "pw_proj.bn.weight", "layer_scale.gamma",
    "attn.query.proj.weight", "attn.key.proj.weight", "attn.value.proj.weight", "attn.output.proj.weight",
    "attn.key.down_conv.weight", "attn.key.norm.weight", "attn.value.down_conv.weight",
    "attn.value.norm.weight", "norm.weight",
}  # fmt: skip


def test_checkpoint_names_are_the_converters_mapping_reversed() -> None:
    """gguf-py's TensorNameMap (the converter's table) maps every checkpoint name back to its GGUF name."""
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, 128)
    for spec in vision_tensor_plan("e2b") + audio_tensor_plan("e2b"):
        hf = names.hf_name(spec.name)
        if hf.startswith("model.vision_tower.timm_model.blocks."):
            stage, index, suffix = hf.removeprefix("model.vision_tower.timm_model.blocks.").split(".", 2)
            assert suffix in CONVERTER_BLOCK_SUFFIXES and spec.name == f"v.blk.{stage}.{index}.{suffix}"
        elif spec.name.startswith("a.conv1d.") and spec.name.endswith(".norm.weight"):
            # the converter's mapping gap (gemma3n-audio.md §4.4): unmapped, named as its fix names it
            assert tmap.get_name(hf, try_suffixes=(".weight",)) is None
            assert hf == f"model.audio_tower.subsample_conv_projection.conv_{spec.name[9]}.norm.weight"
        else:
            converter_name = hf.replace("model.audio_tower.conformer.", "conformer.layers.")
            assert tmap.get_name(converter_name, try_suffixes=(".weight", ".bias", ".gamma")) == spec.name, hf


def test_bf16_converts_correctly_rounded_and_bad_values_are_refused() -> None:
    bits = np.arange(1 << 16, dtype=np.uint16)
    values = bf16_to_f32(bits)
    finite = bits[np.isfinite(values) & (np.abs(values) <= 65504)]
    stored = np.frombuffer(convert(finite.tobytes(), "BF16", Q.F16, "t"), dtype="<f2")
    reference = bf16_to_f32(finite).astype(np.float64).astype(np.float16)  # one rounding, from float64
    assert stored.tobytes() == reference.tobytes()
    assert convert(finite.tobytes(), "BF16", Q.F32, "t") == bf16_to_f32(finite).tobytes()
    halves = np.linspace(-3, 3, 101).astype("<f2")
    assert convert(halves.tobytes(), "F16", Q.F16, "t") == halves.tobytes()
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        convert(np.array([0x7FC0], dtype="<u2").tobytes(), "BF16", Q.F16, "t")
    with pytest.raises(ModelFileError, match="float16's range"):
        convert(np.array([1e6], dtype="<f4").tobytes(), "F32", Q.F16, "t")


# -- the build -------------------------------------------------------------------------------------


def test_build_fetches_only_tower_bytes_and_reproduces_the_synthetic_projector(
    source: Source, hub: FakeHub, tmp_path: Path
) -> None:
    ck = source.checkpoint
    reports: list[BuildProgress] = []
    result = build(hub, tmp_path / "out" / "mmproj.gguf", progress=reports.append)

    # only headers and tower tensors crossed the network; the text-only shard was never touched
    ranges = requested(ck, hub.requests)
    assert TEXT_ONLY_SHARD not in {shard for shard, _, _ in ranges}
    assert not any(TEXT_ONLY_SHARD.encode() in r.path.encode() for r in hub.requests)
    for shard, first, end in ranges:
        in_header = end <= ck.header_end(shard)
        assert in_header or covered(tower_ranges(ck, shard), first, end), (shard, first, end)
    tower_bytes = tower_total(ck)
    fetched_tensor_bytes = sum(end - first for shard, first, end in ranges if first >= ck.header_end(shard))
    assert fetched_tensor_bytes == tower_bytes  # each tower byte exactly once
    assert len(ranges) > 2 * 3 + 4  # several pieces: 64 KiB pieces, text tensors between tower tensors

    # the synthetic writer's tensor table (names, order, types, shapes) and metadata
    built, synthetic = validate_gguf(result.path, expect="mmproj"), validate_gguf(source.projector)
    assert [(t.name, t.type_name, t.shape) for t in built.tensors] == [
        (t.name, t.type_name, t.shape) for t in synthetic.tensors
    ]
    assert kv_without_build_keys(result.path) == kv_without_build_keys(source.projector)
    assert built.kv["gemma_desk.mmproj_build.repo"] == REPO and built.kv["general.type"] == "mmproj"

    # values: exactly the bf16 source after conversion, and the synthetic weights up to bf16 rounding
    data, original = result.path.read_bytes(), source.projector.read_bytes()
    for t, s in zip(built.tensors, synthetic.tensors, strict=True):
        stored = data[t.offset : t.offset + t.n_bytes]
        assert stored == expected_bytes(ck, t.name, t.type_name), t.name
        dtype = {"F16": "<f2", "F32": "<f4"}[t.type_name]
        ours = np.frombuffer(stored, dtype=dtype).astype(np.float32)
        theirs = np.frombuffer(original[s.offset : s.offset + s.n_bytes], dtype=dtype).astype(np.float32)
        np.testing.assert_allclose(ours, theirs, rtol=2**-8, atol=1e-30)

    assert (result.size_bytes, result.has_vision, result.has_audio) == (len(data), True, True)
    assert result.fetched_bytes == sum(
        len(ck.files[n]) for n in ("config.json", "model.safetensors.index.json")
    ) + sum(end - first for _, first, end in ranges)
    stages = [r.stage for r in reports]
    assert stages[0] == "header" and stages[-1] == "verify" and "fetch" in stages and "write" in stages
    fetch = [r for r in reports if r.stage == "fetch"]
    assert fetch[-1].done_bytes == fetch[-1].total_bytes == tower_bytes
    assert not journal_path(result.path).exists() and not Path(f"{result.path}.partial").exists()


@pytest.mark.slow
def test_built_projector_answers_an_image_and_an_audio_question(
    source: Source, hub: FakeHub, tmp_path: Path, tiny_model: Path
) -> None:
    from model_io.audio.tower import embed_clip
    from model_io.engine import Engine, EventQueue
    from model_io.events import ChatRequest, Done, LoadRequest, ModelLoaded, Stats
    from model_io.media import MediaInput
    from model_io.prompt import ChatMessage
    from model_io.settings import LoadSettings, SamplingSettings

    built = build(hub, tmp_path / "mmproj.gguf").path
    wave = (np.sin(np.arange(24000) / 7) * 0.3).astype(np.float32)
    ours, theirs = embed_clip(built, wave), embed_clip(source.projector, wave)
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert ours.shape == theirs.shape and cosine.min() > 0.999  # bf16 rounding only

    pixels = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    questions = {
        "image": (MediaInput("image", pixels, label="p.png"), "What is in this picture?"),
        "audio": (MediaInput("audio", wave, label="hum.wav"), "What do you hear?"),
    }
    events = EventQueue()
    engine = Engine(events)
    try:
        load = LoadRequest(tiny_model, LoadSettings(n_ctx=2048, n_threads=2), mmproj_path=built)
        engine.load(load)
        loaded = list(events.events_for(load.request_id, timeout=60))[-1]
        assert isinstance(loaded, ModelLoaded) and loaded.info.has_vision and loaded.info.has_audio
        for kind, parts in questions.items():
            engine.new_conversation()
            request = ChatRequest(
                (ChatMessage("user", parts),), SamplingSettings.greedy_decoding(), max_tokens=4
            )
            engine.submit(request)
            stats, done = list(events.events_for(request.request_id, timeout=120))[-2:]
            assert isinstance(done, Done) and done.finish_reason in ("length", "stop"), done
            assert isinstance(stats, Stats) and getattr(stats.stats, f"{kind}_encode_ms") > 0
            assert stats.stats.prompt_tokens > (256 if kind == "image" else 189)
    finally:
        engine.close()


# -- resume, cancel ----------------------------------------------------------------------------------


def test_interrupted_build_resumes_fetching_only_what_is_missing(
    source: Source, hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ck, out = source.checkpoint, tmp_path / "mmproj.gguf"
    cancel = threading.Event()
    real_commit = PartialBuild.commit
    commits = []

    def commit_then_cancel(self: PartialBuild, finished: dict[str, int]) -> None:
        real_commit(self, finished)
        commits.append(finished)
        if len(commits) == 3:
            cancel.set()

    monkeypatch.setattr(PartialBuild, "commit", commit_then_cancel)
    with pytest.raises(DownloadCancelled, match="run the build again to resume"):
        build(hub, out, cancel=cancel)
    assert not out.exists() and Path(f"{out}.partial").exists()
    kept = {name for finished in commits for name in finished}
    assert 0 < len(kept) < len(ck.bf16)

    first_run = len(hub.requests)
    monkeypatch.setattr(PartialBuild, "commit", real_commit)
    result = build(hub, out)
    again = [(s, a, b) for s, a, b in requested(ck, hub.requests[first_run:]) if a >= ck.header_end(s)]
    kept_ranges = {(ck.weight_map[h], *ck.ranges(ck.weight_map[h])[h]) for h in map(names.hf_name, kept)}
    for shard, first, end in again:
        assert not any(s == shard and a < end and first < b for s, a, b in kept_ranges), "fetched twice"
    kept_bytes = sum(b - a for _, a, b in kept_ranges)
    total_bytes = tower_total(ck)
    assert sum(end - first for _, first, end in again) == total_bytes - kept_bytes
    assert result.fetched_bytes < total_bytes

    fresh = build(hub, tmp_path / "fresh" / "mmproj.gguf")
    assert result.path.read_bytes() == fresh.path.read_bytes()


def stop_after_first_commit(hub: FakeHub, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start a build into ``out`` and cancel it once the journal has recorded its first finished tensors."""
    cancel = threading.Event()
    real_commit = PartialBuild.commit

    def commit_once(self: PartialBuild, finished: dict[str, int]) -> None:
        real_commit(self, finished)
        cancel.set()

    monkeypatch.setattr(PartialBuild, "commit", commit_once)
    with pytest.raises(DownloadCancelled):
        build(hub, out, cancel=cancel)
    monkeypatch.setattr(PartialBuild, "commit", real_commit)


def test_a_damaged_partial_file_is_caught_by_the_read_back_and_refetched(
    source: Source, hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "mmproj.gguf"
    stop_after_first_commit(hub, out, monkeypatch)
    journal = [json.loads(line) for line in journal_path(out).read_text().splitlines()]
    damaged = next(iter(journal[1]["done"]))
    partial = Path(f"{out}.partial")
    header = validate_gguf(partial)
    (where,) = [t.offset for t in header.tensors if t.name == damaged]
    with partial.open("r+b") as handle:  # a lost or corrupted write after the journal said "done"
        handle.seek(where)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelFileError, match="read back differently"):
        build(hub, out)
    assert not out.exists()
    result = build(hub, out)
    assert result.path.read_bytes() == build(hub, tmp_path / "fresh" / "mmproj.gguf").path.read_bytes()


def test_a_partial_build_of_other_bytes_is_discarded(
    source: Source, hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "mmproj.gguf"
    stop_after_first_commit(hub, out, monkeypatch)
    changed = make_checkpoint(source.projector, seed=6)  # same towers and layout, other text weights
    with FakeHub(lifetime=60) as other:
        serve(other, changed.files)
        build(other, out)
        fetched = requested(changed, other.requests)
    tensor_bytes = sum(end - first for shard, first, end in fetched if first >= changed.header_end(shard))
    assert tensor_bytes == tower_total(changed)  # nothing was taken from the old partial file


def test_single_file_checkpoint(source: Source, tmp_path: Path) -> None:
    single = make_checkpoint(source.projector, single_file=True)
    with FakeHub(lifetime=60) as hub:
        serve(hub, single.files)
        result = build(hub, tmp_path / "mmproj.gguf")
        ranges = requested(single, hub.requests)
    towers = tower_ranges(single, "model.safetensors")
    assert all(end <= single.header_end(s) or covered(towers, first, end) for s, first, end in ranges)
    built = validate_gguf(result.path)
    assert built.n_tensors == len(single.bf16) and built.kv["clip.has_audio_encoder"] is True


def test_broken_connection_resumes_inside_the_piece(source: Source, hub: FakeHub, tmp_path: Path) -> None:
    ck = source.checkpoint
    hub.faults.drop_after, hub.faults.drop_times = 20_000, 1000  # every answer is cut after 20 kB
    result = build(hub, tmp_path / "mmproj.gguf")
    assert validate_gguf(result.path, expect="mmproj").n_tensors == len(ck.bf16)
    ranges = requested(ck, hub.requests)
    # a range that starts where a dropped one stopped: not at any tensor boundary
    starts = {a for s in ck.files if s.endswith(".safetensors") for a, _ in ck.ranges(s).values()}
    assert any(first not in starts and first > ck.header_end(s) for s, first, _ in ranges)


def test_cancel_stops_a_slow_transfer_promptly(source: Source, hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.throttle_bps = 40_000
    cancel = threading.Event()
    timer = threading.Timer(1.0, cancel.set)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(DownloadCancelled):
            build(hub, tmp_path / "mmproj.gguf", cancel=cancel)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 2.0
    assert not (tmp_path / "mmproj.gguf").exists() and (tmp_path / "mmproj.gguf.partial").exists()


# -- refusals ------------------------------------------------------------------------------------------


def test_gated_repo_needs_an_accepted_token(source: Source, tmp_path: Path) -> None:
    with FakeHub(lifetime=60) as hub:
        serve(hub, source.checkpoint.files, gated=True)
        hub.add_token("good")
        hub.add_token("no-licence", accepted=False)
        with pytest.raises(AccessDeniedError, match="--token"):
            build(hub, tmp_path / "a.gguf")
        with pytest.raises(AccessDeniedError, match="refused this token"):
            build(hub, tmp_path / "b.gguf", token="no-licence")
        assert not any(r.server == "cdn" for r in hub.requests)
        assert build(hub, tmp_path / "c.gguf", token="good").has_audio


@pytest.mark.parametrize(
    ("fault", "value", "error", "match"),
    [
        ("ignore_range", True, ModelFileError, "ignored the range request"),
        ("drop_after", 0, DownloadError, "broke off"),
        ("corrupt_offset", 40, ModelFileError, "header"),
        ("fail_status", 404, DownloadError, "HTTP 404"),
    ],
)
def test_bad_range_answers_are_refused(
    source: Source, hub: FakeHub, tmp_path: Path, fault: str, value: object, error: type, match: str
) -> None:
    setattr(hub.faults, fault, value)
    hub.faults.drop_times = hub.faults.fail_times = 50
    with pytest.raises(error, match=match):
        build(hub, tmp_path / "mmproj.gguf")
    assert not (tmp_path / "mmproj.gguf").exists()


def test_an_expired_download_url_is_resolved_again(source: Source, hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.fail_status, hub.faults.fail_times = 403, 1
    result = build(hub, tmp_path / "mmproj.gguf")
    assert result.has_vision
    heads = [r for r in hub.requests if r.server == "hub" and r.method == "HEAD"]
    assert len(heads) == 2 + 3 + 1  # config, index, three shards, and the expired one once more


def test_not_enough_disk_is_refused_before_any_tensor_is_fetched(
    source: Source, hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ck = source.checkpoint
    monkeypatch.setattr(download, "free_disk_bytes", lambda _path: 200_000)
    with pytest.raises(DiskSpaceError, match="not enough free disk space"):
        build(hub, tmp_path / "mmproj.gguf")
    assert all(end <= ck.header_end(shard) for shard, _, end in requested(ck, hub.requests))
    assert [p.name for p in tmp_path.iterdir()] == [".mmproj.gguf.lock"]  # no partial file, no journal


def test_not_a_gemma3n_checkpoint_is_refused(source: Source, tmp_path: Path) -> None:
    files = dict(source.checkpoint.files)
    files["config.json"] = json.dumps({"model_type": "llama", "hidden_size": 64}).encode()
    with FakeHub(lifetime=60) as hub:
        serve(hub, files)
        with pytest.raises(UnsupportedModelError, match="not a Gemma 3n checkpoint"):
            build(hub, tmp_path / "mmproj.gguf")
        hub.add_repo("someone/gguf-only", {"model.gguf": b"GGUF", "config.json": b"{}"})
        with pytest.raises(UnsupportedModelError):
            build_mmproj("someone/gguf-only", tmp_path / "x.gguf", endpoint=hub.url)
        with pytest.raises(InputError, match="no repository"):
            build_mmproj("nobody/nothing", tmp_path / "y.gguf", endpoint=hub.url)


def test_missing_tower_tensor_is_named(source: Source, tmp_path: Path) -> None:
    ck = source.checkpoint
    dropped = names.hf_name("a.blk.1.conv_dw.weight")
    index = json.loads(ck.files["model.safetensors.index.json"])
    del index["weight_map"][dropped]
    files = {**ck.files, "model.safetensors.index.json": json.dumps(index).encode()}
    with FakeHub(lifetime=60) as hub:
        serve(hub, files)
        with pytest.raises(ModelFileError, match=dropped.replace(".", r"\.")):
            build(hub, tmp_path / "mmproj.gguf")
        assert all(end <= ck.header_end(shard) for shard, _, end in requested(ck, hub.requests))


def test_existing_output(source: Source, hub: FakeHub, tmp_path: Path) -> None:
    out = tmp_path / "mmproj.gguf"
    build(hub, out)
    before = len(requested(source.checkpoint, hub.requests))
    again = build(hub, out)  # same repo and commit: nothing is fetched
    assert again.path == out and len(requested(source.checkpoint, hub.requests)) == before
    other = tmp_path / "other.gguf"
    other.write_bytes(source.projector.read_bytes())
    with pytest.raises(InputError, match="already exists"):
        build(hub, other)
    with pytest.raises(InputError, match=r"\.gguf"):
        build(hub, tmp_path / "mmproj.bin")


# -- the command line ----------------------------------------------------------------------------------


def test_cli_builds_into_the_models_folder_where_discovery_finds_it(
    source: Source,
    hub: FakeHub,
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.cli_media import projector_for
    from model_io.discovery import SearchRoots, discover

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    folder = models_dir()
    folder.mkdir(parents=True)
    model = folder / "gemma-3n-E2B-it-Q4_K_M.gguf"
    model.symlink_to(tiny_model)
    assert main(["models", "build-mmproj", "--repo", REPO, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["event"] == "done" and {e["stage"] for e in lines[:-1]} >= {"header", "fetch", "verify"}
    built = folder / default_output_name(REPO)
    assert Path(lines[-1]["path"]) == built and lines[-1]["has_audio"] and lines[-1]["has_vision"]
    assert projector_for(model, None, required=True) == built
    (found,) = discover(SearchRoots(models=folder)).models
    assert found.mmproj is not None and found.mmproj.path == built


def test_cli_gated_repo_without_token_exits_2_with_a_json_error(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeHub(lifetime=60) as hub:
        serve(hub, source.checkpoint.files, gated=True)
        hub.add_token("secret")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        out = tmp_path / "m.gguf"
        assert main(["models", "build-mmproj", "--repo", REPO, "--out", str(out), "--json"]) == 2
        captured = capsys.readouterr()
        error = json.loads(captured.out.splitlines()[-1])
        assert error["event"] == "error" and error["kind"] == "input" and "token" in error["message"]
        assert captured.err.startswith("gemma-desk: error:") and len(captured.err.splitlines()) == 1
        monkeypatch.setenv("MY_HF_TOKEN", "secret")
        assert (
            main(["models", "build-mmproj", "--repo", REPO, "--out", str(out), "--token-env", "MY_HF_TOKEN"])
            == 0
        )
        assert str(out) in capsys.readouterr().out
        assert main(["models", "build-mmproj", "--repo", REPO, "--token-env", "UNSET_VARIABLE_XYZ"]) == 2
