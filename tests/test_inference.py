"""Async inference pieces: the wire protocol, client errors on real sockets, the control loop, devices."""

from __future__ import annotations

import json
import math
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from so101lab import contract
from so101lab.inference import protocol
from so101lab.inference.client import AsyncPolicyClient, PolicyClient
from so101lab.inference.predictor import Predictor
from so101lab.inference.protocol import IncompatiblePeer, Message, ProtocolError, RemoteError, ServerGone, ServerLate
from so101lab.inference.runner import ControlLoop, Execution, SimulatedLatency, boundary_jerk
from so101lab.inference.server import PolicyServer
from so101lab.inference.sources import local_predict
from so101lab.policies import ACTConfig, ActionQueue, ACTPolicy, load_policy
from so101lab.policies.device import resolve_device, resolve_dtype
from so101lab.policies.smolvla_config import so101_features

FIXTURE = Path(__file__).parent / "fixtures" / "smolvla_tiny"
pytestmark = pytest.mark.usefixtures("torch_one_thread")


# --- protocol -------------------------------------------------------------------------------------


def test_frames_carry_arrays_and_json_without_pickle():
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "img": np.zeros((1, 4, 5, 3), np.uint8),
              "big_endian": np.arange(3, dtype=">f8"), "empty": np.zeros((0, 7), np.int64)}
    frame = protocol.encode(Message("infer", {"tasks": ["pick", "é"], "step": 3}, arrays))
    magic, head_len, payload_len = struct.unpack("<4sIQ", frame[:16])
    header = json.loads(frame[16 : 16 + head_len])
    assert magic == protocol.MAGIC and header["v"] == protocol.PROTOCOL_VERSION
    assert len(frame) == 16 + head_len + payload_len
    message = protocol.decode(frame[16 : 16 + head_len], frame[16 + head_len :])
    assert message.kind == "infer" and message.fields == {"tasks": ["pick", "é"], "step": 3}
    for name, value in arrays.items():
        np.testing.assert_array_equal(message.arrays[name], value)
    assert message.arrays["big_endian"].dtype.str == "<f8"
    with pytest.raises(TypeError, match="cannot go on the wire"):
        protocol.encode(Message("x", arrays={"o": np.array([{"a": 1}], dtype=object)}))


def _split(frame: bytes) -> tuple[bytes, bytes]:
    head_len = struct.unpack("<4sIQ", frame[:16])[1]
    return frame[16 : 16 + head_len], frame[16 + head_len :]


def test_decoding_refuses_other_versions_and_malformed_frames():
    head, payload = _split(protocol.encode(Message("hello", arrays={"a": np.zeros(4, np.float32)})))
    other = json.dumps({**json.loads(head), "v": 99}).encode()
    with pytest.raises(IncompatiblePeer, match="version 99, this side 1"):
        protocol.decode(other, payload)
    with pytest.raises(ProtocolError, match="runs past the payload"):
        protocol.decode(head, payload[:-1])
    with pytest.raises(ProtocolError, match="beyond its arrays"):
        protocol.decode(head, payload + b"\0")
    pickled = json.dumps({**json.loads(head), "arrays": [{"name": "a", "dtype": "|O", "shape": [2]}]}).encode()
    with pytest.raises(ProtocolError, match=r"dtype '\|O'"):
        protocol.decode(pickled, payload)
    with pytest.raises(ProtocolError, match="not JSON"):
        protocol.decode(b"\xff{", b"")


def test_reading_a_silent_closed_or_foreign_peer_fails_fast():
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(ServerLate):
            protocol.recv_message(a, timeout=0.1)
        b.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        with pytest.raises(IncompatiblePeer, match="not a so101lab policy server"):
            protocol.recv_message(a, timeout=1.0)
    a, b = socket.socketpair()
    with a:
        b.sendall(protocol.encode(Message("chunk"))[:10])
        b.close()
        with pytest.raises(ServerGone, match="closed"):
            protocol.recv_message(a, timeout=1.0)
    a, b = socket.socketpair()
    with a, b:
        b.sendall(struct.pack("<4sIQ", protocol.MAGIC, protocol.MAX_HEADER_BYTES + 1, 0))
        with pytest.raises(ProtocolError, match="oversized"):
            protocol.recv_message(a, timeout=1.0)


# --- client against real sockets ------------------------------------------------------------------


def _fake_server(behaviour) -> tuple[str, threading.Thread]:
    """A one-connection TCP server on 127.0.0.1 whose ``behaviour(conn)`` plays a broken policy server."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def run() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                behaviour(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return f"127.0.0.1:{listener.getsockname()[1]}", thread


def test_client_names_a_server_that_is_gone_late_or_incompatible():
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(ServerGone, match=f"no policy server at 127.0.0.1:{port}.*so101lab policy-server"):
        PolicyClient(f"127.0.0.1:{port}", connect_timeout=1.0)

    hold = threading.Event()
    address, thread = _fake_server(lambda conn: hold.wait(5))  # accepts, never answers
    with pytest.raises(ServerLate, match="no complete reply"):
        PolicyClient(address, connect_timeout=0.3)
    hold.set()
    thread.join(5)

    def old_version(conn: socket.socket) -> None:
        protocol.recv_message(conn, timeout=5)
        frame = protocol.encode(Message("hello", {"protocol": 0}))
        head, payload = _split(frame)
        head = json.dumps({**json.loads(head), "v": 0}).encode()
        conn.sendall(struct.pack("<4sIQ", protocol.MAGIC, len(head), len(payload)) + head + payload)

    address, thread = _fake_server(old_version)
    with pytest.raises(IncompatiblePeer, match="version 0, this side 1"):
        PolicyClient(address, connect_timeout=2.0)
    thread.join(5)

    def hangs_up_after_hello(conn: socket.socket) -> None:
        protocol.recv_message(conn, timeout=5)
        protocol.send_message(conn, Message("hello", {"protocol": protocol.PROTOCOL_VERSION, "policy": {}}))

    address, thread = _fake_server(hangs_up_after_hello)
    client = PolicyClient(address, connect_timeout=2.0, timeout=2.0)
    thread.join(5)
    threaded = AsyncPolicyClient(client)
    obs = {contract.OBS_STATE: np.zeros((1, 6), np.float32)}
    assert threaded.submit(obs, ["pick"], 0)
    with pytest.raises(ServerGone):
        for _ in range(200):  # the failure surfaces in the control thread's poll, within the deadline
            threaded.poll()
            threading.Event().wait(0.01)
    threaded.close()


@pytest.fixture(scope="module")
def tiny_smolvla():
    return load_policy(FIXTURE / "checkpoint", vlm_dir=FIXTURE / "vlm")


def _obs(batch: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {contract.OBS_STATE: rng.uniform(-30, 30, (batch, 6)).astype(np.float32),
            contract.OBS_PIXELS: {c: rng.integers(0, 256, (batch, 48, 64, 3), dtype=np.uint8)
                                  for c in ("front", "wrist")}}


def test_in_thread_server_answers_chunks_and_survives_a_bad_request(tiny_smolvla):
    server = PolicyServer(Predictor(tiny_smolvla), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve, kwargs={"max_clients": 1, "idle_timeout": 20}, daemon=True)
    thread.start()
    host, port = server.address
    assert host == "127.0.0.1"
    with PolicyClient(f"{host}:{port}", timeout=20) as client:
        assert client.info["chunk_size"] == 10 and client.info["cameras"] == ["front", "wrist"]
        reply = client.predict(_obs(2), ["pick up the cube"] * 2, step=7, min_latency_s=0.05)
        assert reply.actions.shape == (2, 10, 6) and reply.actions.dtype == np.float32 and reply.step == 7
        assert reply.round_trip_s >= 0.05  # the declared latency is honoured
        broken = _obs(1)
        del broken[contract.OBS_PIXELS]["wrist"]
        with pytest.raises(RemoteError, match="no camera 'wrist'"):
            client.predict(broken, ["pick"])
        assert client.predict(_obs(1), ["pick"]).actions.shape == (1, 10, 6)
    thread.join(10)
    assert not thread.is_alive()


# --- the control loop -----------------------------------------------------------------------------


def _counting_predict(chunk: int = 10):
    """A fake policy: action i of the chunk requested at step s is s + i (every joint), computed in 1 ms."""
    calls = []

    def predict(obs, tasks, step, guidance):
        calls.append(step)
        values = step + np.arange(chunk, dtype=np.float32)
        return np.broadcast_to(values[None, :, None], (1, chunk, 6)).copy(), 0.001

    return predict, calls


def _run(loop: ControlLoop, steps: int) -> np.ndarray:
    obs = {contract.OBS_STATE: np.full((1, 6), -1.0, np.float32)}
    return np.array([loop.act(obs, ["t"])[0, 0] for _ in range(steps)])


def test_sync_loop_with_no_latency_is_the_classic_chunk_queue():
    predict, calls = _counting_predict()
    loop = ControlLoop(SimulatedLatency(predict, 0.0), Execution("sync"), chunk_size=10, n_action_steps=4)
    actions = _run(loop, 12)
    queue, step = ActionQueue(4), iter(range(100))
    expected = []
    for _ in range(12):
        s = next(step)
        expected.append(queue.pop(lambda s=s: torch.as_tensor(predict(None, None, s, None)[0]))[0, 0].item())
    np.testing.assert_array_equal(actions, expected)
    assert calls[-3:] == [0, 4, 8] and loop.stats.stalls == 0 and loop.stats.startup_holds == 0


def test_sync_loop_holds_while_the_policy_computes():
    predict, _ = _counting_predict()
    loop = ControlLoop(SimulatedLatency(predict, 100.0), Execution("sync"), chunk_size=10, n_action_steps=5)
    actions = _run(loop, 16)
    # 100 ms = 3 steps of hold (the present position, then the last goal), then the chunk from its start.
    np.testing.assert_array_equal(actions[:8], [-1, -1, -1, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(actions[8:16], [4, 4, 4, 8, 9, 10, 11, 12])
    assert loop.stats.startup_holds == 3 and loop.stats.stalls == 3


@pytest.mark.parametrize(("latency_ms", "stalls"), [(0, 0), (100, 0), (160, 0), (200, 10), (400, 28)])
def test_async_loop_stalls_only_when_latency_exceeds_the_queued_time(latency_ms, stalls):
    """Threshold 0.5 of a 10-action chunk: 5 queued actions (167 ms) cover the next chunk's latency.

    At 200 ms (6 steps) each chunk lands 2 steps after the queue ran dry; at 400 ms (12 steps, more
    than the chunk's 333 ms) every chunk is overtaken by time before it lands and nothing runs.
    """
    predict, _ = _counting_predict()
    loop = ControlLoop(SimulatedLatency(predict, latency_ms), Execution("async", 0.5, "latest"), 10, 10)
    actions = _run(loop, 40)
    assert loop.stats.stalls == stalls
    assert loop.stats.startup_holds == math.ceil(latency_ms * 30 / 1000 - 1e-9)
    ran = actions != np.concatenate([[-1], actions[:-1]])  # steps that did not repeat (hold) a goal
    ran[0] = actions[0] != -1
    # Action i of the chunk observed at step s is for step s + i: what runs at step t is t itself.
    np.testing.assert_array_equal(actions[ran], np.flatnonzero(ran))


def test_async_loop_drops_overtaken_actions_and_aggregates_overlaps():
    def predict(obs, tasks, step, guidance):
        return np.full((1, 10, 6), 10.0 * (step + 1), np.float32), 0.0

    for aggregate, merged in [("latest", 60.0), ("average", 35.0), ("weighted", 0.3 * 10 + 0.7 * 60)]:
        loop = ControlLoop(SimulatedLatency(predict, 66.0), Execution("async", 0.5, aggregate), 10, 10)
        actions = _run(loop, 9)
        # Chunk of step 0 lands at step 2 (its actions 0, 1 overtaken); at step 5 (5 queued) the next is
        # requested, lands at step 7 and merges with the first chunk's actions for steps 7..9.
        np.testing.assert_allclose(actions, [-1, -1, 10, 10, 10, 10, 10, merged, merged])


def test_boundary_jerk_sees_a_jump_between_chunks():
    smooth = np.linspace(0, 1, 20)[:, None, None] * np.ones((1, 1, 6))
    jumpy = smooth.copy()
    jumpy[10:] += 0.5
    assert boundary_jerk(smooth, [10])["jerk_boundary_mean"] == pytest.approx(0, abs=1e-6)
    # The 4-step stencils across the jump see 0.5 x (1, -3 + 1, 3 - 3 + 1): the largest is 1.0.
    assert boundary_jerk(jumpy, [10])["jerk_boundary_mean"] == pytest.approx(1.0 * 30**3)


def test_loop_on_a_real_policy_matches_select_action(tiny_smolvla):
    """Sync, no latency, the same noise: the control loop executes exactly what select_action does."""
    obs = {k: v for k, v in _obs(1, seed=3).items()}
    tiny_smolvla.reset()
    torch.manual_seed(5)
    expected = [tiny_smolvla.select_action(obs, ["pick"]) for _ in range(12)]
    torch.manual_seed(5)
    loop = ControlLoop(SimulatedLatency(local_predict(Predictor(tiny_smolvla)), 0.0), Execution("sync"), 10, 10)
    got = [loop.act(obs, ["pick"]) for _ in range(12)]
    np.testing.assert_array_equal(np.concatenate(got), np.concatenate(expected))


# --- devices and precision ------------------------------------------------------------------------


def test_device_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="--device cuda: torch sees no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(RuntimeError, match="MPS backend is not available"):
        resolve_device("mps")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match="float16 is for GPUs"):
        resolve_dtype("float16", torch.device("cpu"))
    assert resolve_dtype("float16", torch.device("cuda")) == torch.float16


def _tiny_act() -> ACTPolicy:
    inputs, outputs = so101_features(("front", "wrist"), (48, 64))
    config = ACTConfig(input_features=inputs, output_features=outputs, image_size=(32, 32), dim_model=32,
                       n_heads=2, dim_feedforward=64, n_encoder_layers=1, chunk_size=10, n_action_steps=5)
    stats = {k: {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)} for k in config.image_features}
    for key in (contract.FEATURE_STATE, contract.FEATURE_ACTION):
        stats[key] = {"mean": torch.zeros(6), "std": torch.full((6,), 30.0)}
    torch.manual_seed(0)
    return ACTPolicy(config, stats)


@pytest.mark.parametrize("kind", ["smolvla", "act"])
def test_bfloat16_inference_is_close_and_float32_is_untouched(kind, tmp_path, tiny_smolvla):
    if kind == "smolvla":
        path, kwargs = FIXTURE / "checkpoint", {"vlm_dir": FIXTURE / "vlm"}
    else:
        path, kwargs = _tiny_act().save_pretrained(tmp_path / "act"), {}
    obs, noise = _obs(2, seed=1), torch.randn(2, 10, 32, generator=torch.Generator().manual_seed(0))
    chunks = {}
    for dtype in ("float32", "bfloat16"):
        predictor = Predictor(load_policy(path, device="auto", dtype=dtype, **kwargs))
        chunks[dtype] = predictor.predict(obs, ["pick", "pick"], noise=noise if kind == "smolvla" else None)
        assert predictor.info["dtype"] == dtype and predictor.info["device"] == "cpu"
    if kind == "smolvla":  # float32 through load_policy is the parity path, bit for bit
        batch = tiny_smolvla.processor.observation_to_batch(obs, ["pick", "pick"])
        np.testing.assert_array_equal(chunks["float32"], tiny_smolvla.predict_action_chunk(batch, noise).numpy())
    scale = np.abs(chunks["float32"]).max()
    diff = np.abs(chunks["bfloat16"] - chunks["float32"]).max()
    assert 0 < diff < 0.05 * scale, (diff, scale)


def test_train_takes_device_auto_and_a_bfloat16_autocast(tmp_path, monkeypatch):
    """ACT trains a few steps under --device auto --dtype bfloat16 (CPU here); float16 is refused on a CPU."""
    import tyro

    from so101lab.datasets.synthetic import write_synthetic
    from so101lab.experiments import train

    root = tmp_path / "ds"
    write_synthetic(root, [(20, "pick"), (15, "pick")], (contract.CameraSpec("front", 48, 64),))
    argv = ["--dataset", str(root), "--policy", "act", "--steps", "3", "--batch-size", "4", "--chunk-size", "6",
            "--n-action-steps", "3", "--act.image-size", "32", "32", "--act.dim-model", "32", "--act.n-heads", "2",
            "--act.dim-feedforward", "64", "--act.n-encoder-layers", "1", "--wandb", "disabled",
            "--device", "auto", "--dtype", "bfloat16", "--output-dir", str(tmp_path / "out")]
    args = tyro.cli(train.Args, args=argv)
    assert train.autocast_dtype(args) == torch.bfloat16
    seen = []
    real_autocast = torch.autocast

    def spy(device_type, dtype=None, enabled=True, **kw):
        seen.append((device_type, dtype, enabled))
        return real_autocast(device_type, dtype=dtype, enabled=enabled, **kw)

    monkeypatch.setattr(torch, "autocast", spy)
    train.main(args)
    assert ("cpu", torch.bfloat16, True) in seen
    assert (tmp_path / "out" / "checkpoints" / "000003").is_dir()
    with pytest.raises(RuntimeError, match="torch sees no CUDA device"):
        train._accelerator(tyro.cli(train.Args, args=[*argv, "--device", "cuda"]))


# --- real-time chunking ---------------------------------------------------------------------------


def test_rtc_weights_follow_the_papers_schedule():
    from so101lab.inference.rtc import guidance_weight, prefix_weights

    w = prefix_weights(3, 8, 10)
    assert w[:3].tolist() == [1, 1, 1] and w[8:].tolist() == [0, 0]
    assert torch.all(torch.diff(w[2:9]) < 0)
    c = torch.tensor(5 / 6)
    assert w[3].item() == pytest.approx((c * torch.expm1(c) / (math.e - 1)).item())
    assert guidance_weight(1.0) == 10.0 and guidance_weight(0.0) == 0.0
    assert guidance_weight(0.5) == pytest.approx(2.0)  # tau 0.5: (0.5 / 0.5) * (0.25 + 0.25) / 0.25


def test_rtc_inpaints_the_start_of_a_chunk(tiny_smolvla):
    """Same observation, another noise: a plain chunk differs everywhere; a guided one matches the
    queued actions over the delay and blends back to its own over the overlap."""
    from so101lab.inference.predictor import Guidance

    predictor, obs = Predictor(tiny_smolvla), _obs(2)
    noise = [torch.randn(2, 10, 32, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    queued = predictor.predict(obs, ["pick"] * 2, noise=noise[0])
    plain = predictor.predict(obs, ["pick"] * 2, noise=noise[1])
    guided = predictor.predict(obs, ["pick"] * 2, Guidance(queued[:, :6], delay=3), noise=noise[1])
    off = {name: np.abs(chunk - queued).max(axis=(0, 2)) for name, chunk in (("plain", plain), ("rtc", guided))}
    assert np.all(off["rtc"][:3] < 0.05 * off["plain"][:3]), off
    np.testing.assert_allclose(guided[:, 8:], plain[:, 8:], atol=0.5)  # past the overlap: nearly its own
    with pytest.raises(ValueError, match="flow-matching"):
        Predictor(_tiny_act()).predict(obs, ["pick"] * 2, Guidance(queued[:, :6], delay=3))


def test_server_tells_a_client_of_another_version_why_it_hangs_up(tiny_smolvla):
    server = PolicyServer(Predictor(tiny_smolvla), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve, kwargs={"max_clients": 1, "idle_timeout": 20}, daemon=True)
    thread.start()
    head, payload = _split(protocol.encode(Message("hello")))
    head = json.dumps({**json.loads(head), "v": 2}).encode()
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(struct.pack("<4sIQ", protocol.MAGIC, len(head), len(payload)) + head + payload)
        reply = protocol.recv_message(sock, timeout=5)
        assert reply.kind == "error" and reply.fields["code"] == "incompatible"
        assert "version 2, this side 1" in reply.fields["message"]
        with pytest.raises(ServerGone):
            protocol.recv_message(sock, timeout=5)
    thread.join(10)
