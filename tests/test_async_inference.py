"""Async inference end to end: a tiny SmolVLA in a policy server process (real TCP on 127.0.0.1) drives
a MuJoCo task through ``so101lab eval --async`` (simulated time) and the virtual arm's serial port
through ``so101lab deploy --async`` (wall-clock 30 Hz).

The policy is a fresh tiny SmolVLA with 30-action chunks (1 s at 30 Hz). A server computes one chunk
at a time, so a chunk observed at step s lands at s + L and the next one at s + 2L at the earliest:
the arm never waits when the latency L is at most the queued threshold (0.5 x the chunk, 500 ms
here); a latency above the chunk's duration overtakes every chunk before it lands, and the arm
stalls. (The margin is wide on purpose: on a loaded 2-core box the tiny model's 20 ms can take 200.)
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from so101lab.contract import FEATURE_ACTION, FEATURE_STATE
from so101lab.experiments import deploy
from so101lab.experiments import eval as eval_cmd
from so101lab.inference.process import spawned_server
from so101lab.policies import SmolVLAPolicy
from so101lab.policies.smolvla_config import preset_config
from so101lab.policies.vlm_presets import write_vlm_dir

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A fresh tiny SmolVLA (random weights) for one 48x64 camera, chunks of 30 actions.

    One camera: a software renderer on a loaded 2-core box takes ~25 ms a frame, and Real-v0 must
    grab every camera within its 33 ms tick."""
    root = tmp_path_factory.mktemp("tiny_smolvla")
    vlm = write_vlm_dir(root / "vlm", "tiny")
    config = preset_config("tiny", vlm, ("front",), (48, 64), chunk_size=30, n_action_steps=30)
    stats = {k: {"mean": torch.zeros(6), "std": torch.full((6,), 20.0)} for k in (FEATURE_STATE, FEATURE_ACTION)}
    torch.manual_seed(0)
    return SmolVLAPolicy(config, vlm, stats).save_pretrained(root / "checkpoint")


@pytest.fixture(scope="module")
def server(checkpoint) -> str:
    with spawned_server(["--policy-path", str(checkpoint), "--threads", "1", "--device", "cpu"]) as address:
        yield address


def _eval(tmp_path: Path, checkpoint: Path, **kw) -> dict:
    kw.setdefault("max_steps", 45)
    args = eval_cmd.Args(policy_path=checkpoint, n_episodes=2, batch_size=2, seed=3,
                         max_videos=0, output_dir=tmp_path, visual="primitive", shadows=False, threads=1,
                         async_inference=True, **kw)
    return eval_cmd.main(args)["aggregated"]["inference"]


def test_eval_async_spawns_a_server_and_never_stalls_below_the_chunk_duration(tmp_path, checkpoint):
    inference = _eval(tmp_path, checkpoint, latency_ms=100.0)  # no --server: a server process is spawned
    assert inference["mode"] == "async" and inference["latency_ms"] == 100.0
    assert inference["stalls"] == 0
    assert inference["startup_holds"] == 3  # 100 ms = 3 steps before the first chunk
    assert inference["chunks"] == 3  # at steps 0, 15 and 30 (threshold 0.5 of 30), landing 3 steps later


def test_eval_async_counts_stalls_above_the_chunk_duration(tmp_path, checkpoint, server):
    inference = _eval(tmp_path, checkpoint, latency_ms=1200.0, server=server)
    # 1,200 ms = 36 steps > the 30-step chunk: each chunk is overtaken by time when it lands.
    assert inference["startup_holds"] == 36 and inference["stalls"] == 45 - 36


def test_eval_async_at_measured_latency_and_sync_latency_in_process(tmp_path, checkpoint, server):
    measured = _eval(tmp_path, checkpoint, server=server, max_steps=20)  # each chunk's real round trip
    assert measured["measured_latency"] and 0 < measured["latency_s_mean"] < 5
    sync = eval_cmd.main(eval_cmd.Args(policy_path=checkpoint, n_episodes=1, batch_size=1, max_steps=40,
                                       max_videos=0, output_dir=tmp_path / "sync", visual="primitive",
                                       shadows=False, latency_ms=100.0))
    # Sync: ask when the queue is empty, hold 3 steps each time: 40 = 3 + 30 + 3 + 4.
    assert sync["aggregated"]["inference"]["stalls"] == 3 and sync["aggregated"]["inference"]["chunks"] == 2


@pytest.fixture
def fast_virtual_world(monkeypatch):
    """The virtual arm's scene drawn with the primitive arm and no shadows (about 2x faster to render)."""
    from so101lab.real import ports

    monkeypatch.setattr(ports, "VirtualWorld", functools.partial(
        ports.VirtualWorld, env_kwargs={"visual": "primitive", "shadows": False}))


def _deploy(checkpoint: Path, server: str, latency_ms: float, seconds: float) -> dict:
    summary = deploy.run(deploy.Args(port="virtual:PickCube", policy=str(checkpoint),
                                     cameras=("front",), image_size=(48, 64), episodes=1,
                                     episode_seconds=seconds, seed=2, async_inference=True, server=server,
                                     latency_ms=latency_ms, timeout_s=20.0))
    (episode,) = summary["episodes"]
    assert episode["steps"] == round(seconds * 30)
    return episode["inference"]


@pytest.mark.usefixtures("fast_virtual_world")
def test_deploy_async_through_the_virtual_arms_serial_port(checkpoint, server):
    """Real-v0 on a pty at 30 Hz wall clock; the server answers 100 ms after each observation at best."""
    fast = _deploy(checkpoint, server, 100.0, 2.0)
    assert fast["stalls"] == 0, fast
    assert fast["chunks"] >= 3 and fast["latency_s_max"] >= 0.1
    slow = _deploy(checkpoint, server, 1200.0, 2.5)  # longer than the chunk: every chunk lands overtaken
    assert slow["stalls"] > 10, slow


def test_latency_table_script_smoke(tmp_path, checkpoint, server, monkeypatch):
    """scripts/latency_table.py end to end on two latencies and one short episode each."""
    import importlib.util
    import json
    import sys

    script = Path(__file__).parents[1] / "scripts" / "latency_table.py"
    spec = importlib.util.spec_from_file_location("latency_table", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "latency_table", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    args = module.Args(policy_path=checkpoint, episodes=1, batch_size=1, latencies=(0.0, 1200.0), max_steps=40,
                       eval_kwargs={"visual": "primitive", "shadows": "false"}, out=tmp_path, server=server)
    module.run(args)
    rows = json.loads((tmp_path / "latency.json").read_text())["rows"]
    assert [(r["mode"], r["latency_ms"]) for r in rows] == [("sync", 0), ("async", 0), ("sync", 1200), ("async", 1200)]
    by = {(r["mode"], r["latency_ms"]): r for r in rows}
    assert by["sync", 0]["wait_fraction"] == 0 and by["async", 0]["wait_fraction"] == 0
    # 1,200 ms = 36 steps: sync waits 36 of 40 steps for its first chunk; async also stalls after it.
    assert by["sync", 1200]["wait_fraction"] == 36 / 40 and by["async", 1200]["wait_fraction"] == 1.0
    assert "| 1200 |" in (tmp_path / "latency.md").read_text()
    assert (tmp_path / "latency.png").stat().st_size > 1000


def test_rtc_smooths_chunk_boundaries_in_the_latency_aware_eval(tmp_path, checkpoint, server):
    """Random weights make successive chunks disagree: with 'latest' merging the goal jumps where a new
    chunk takes over; RTC guides every new chunk's start onto the queued actions, so the jump shrinks.
    (Jerk is reported too, but a random model's chunks are rough inside as well: it says little here.)"""
    common = dict(latency_ms=100.0, server=server, aggregate="latest", max_steps=60)
    plain = _eval(tmp_path / "plain", checkpoint, **common)
    rtc = _eval(tmp_path / "rtc", checkpoint, rtc=True, **common)
    assert plain["stalls"] == rtc["stalls"] == 0 and rtc["rtc"]
    assert rtc["boundary_jump_mean"] < 0.5 * plain["boundary_jump_mean"], (rtc, plain)
