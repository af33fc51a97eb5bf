"""``so101lab policy-server``: a policy in its own process, answering observations with action chunks over TCP.

    so101lab policy-server --policy-path outputs/smolvla/checkpoint --device auto      # 127.0.0.1:50551
    so101lab policy-server --policy-path CKPT --host 0.0.0.0 --port 50551              # for another machine

Binds to localhost unless ``--host`` says otherwise (the protocol has no authentication: open it
only on a trusted network). Serves one client at a time; a client that disconnects frees it for
the next. Prints ``policy server listening on HOST:PORT`` once ready (``--port 0`` picks a free
port), so a parent process can read where to connect.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from so101lab.contract import OBS_PIXELS, OBS_STATE
from so101lab.inference.predictor import Guidance, Predictor
from so101lab.inference.protocol import (
    DEFAULT_PORT,
    PROTOCOL_VERSION,
    IncompatiblePeer,
    Message,
    ProtocolError,
    ServerGone,
    ServerLate,
    recv_message,
    send_message,
)
from so101lab.policies.device import DeviceName, DtypeName

IMAGE_PREFIX = "image."


def observation_arrays(obs: dict, step: int) -> dict[str, np.ndarray]:
    """A batched env observation as wire arrays: ``state`` [B, S] float32, ``image.<cam>`` [B, H, W, 3] uint8."""
    arrays = {"state": np.asarray(obs[OBS_STATE], dtype=np.float32)}
    for cam, frames in obs.get(OBS_PIXELS, {}).items():
        arrays[IMAGE_PREFIX + cam] = np.asarray(frames, dtype=np.uint8)
    return arrays


def observation_from_arrays(arrays: dict[str, np.ndarray]) -> dict:
    return {OBS_STATE: arrays["state"],
            OBS_PIXELS: {k.removeprefix(IMAGE_PREFIX): v for k, v in arrays.items() if k.startswith(IMAGE_PREFIX)}}


class PolicyServer:
    """Accepts clients on ``host:port`` and answers ``infer`` requests with the predictor's chunks."""

    def __init__(self, predictor: Predictor, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.predictor = predictor
        self.listener = socket.create_server((host, port))
        self.address = self.listener.getsockname()[:2]

    def serve(self, max_clients: int | None = None, idle_timeout: float | None = None) -> None:
        """Serve clients one after another (``max_clients`` of them, or forever)."""
        served = 0
        self.listener.settimeout(idle_timeout)
        try:
            while max_clients is None or served < max_clients:
                try:
                    conn, peer = self.listener.accept()
                except TimeoutError:
                    return
                with conn:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self._serve_client(conn, f"client {peer[0]}:{peer[1]}")
                served += 1
        finally:
            self.listener.close()

    def _serve_client(self, conn: socket.socket, peer: str) -> None:
        try:
            while True:
                try:
                    request = recv_message(conn, timeout=None, peer=peer)
                except IncompatiblePeer as err:
                    # Tell the other side why before hanging up (it may be an older/newer so101lab).
                    send_message(conn, Message("error", {"code": "incompatible", "message": str(err)}), peer)
                    return
                reply = self._handle(request)
                send_message(conn, reply, peer)
                if request.kind == "bye":
                    return
        except (ServerGone, ServerLate, ProtocolError):
            return  # the client left or spoke garbage: wait for the next one

    def _handle(self, request: Message) -> Message:
        if request.kind == "hello":
            return Message("hello", {"protocol": PROTOCOL_VERSION, "policy": self.predictor.info})
        if request.kind == "reset":
            self.predictor.reset()
            return Message("ok")
        if request.kind == "bye":
            return Message("ok")
        if request.kind != "infer":
            return Message("error", {"code": "unknown", "message": f"unknown request kind {request.kind!r}"})
        start = time.perf_counter()
        try:
            guidance = None
            if "guidance" in request.arrays:
                guidance = Guidance(request.arrays["guidance"], int(request.fields.get("delay", 0)))
            chunk = self.predictor.predict(observation_from_arrays(request.arrays), list(request.fields["tasks"]),
                                           guidance)
        except Exception as err:  # the client gets the reason; the server stays up for the next request
            return Message("error", {"code": "inference", "message": f"{type(err).__name__}: {err}",
                                     "id": request.fields.get("id")})
        compute_s = time.perf_counter() - start
        pad = float(request.fields.get("min_latency_s", 0.0)) - compute_s
        if pad > 0:  # a declared latency: answer no earlier than a slower machine would
            time.sleep(pad)
        return Message("chunk", {"id": request.fields.get("id"), "step": request.fields.get("step"),
                                 "compute_s": compute_s}, {"actions": chunk})


@dataclass
class Args:
    policy_path: Path
    """A policy directory or training checkpoint (SmolVLA or ACT)."""
    host: str = "127.0.0.1"
    """Interface to bind; 0.0.0.0 exposes the server to other machines (no authentication)."""
    port: int = DEFAULT_PORT
    """TCP port (0: any free port, printed)."""
    device: DeviceName = "auto"
    """torch device: auto (cuda, then mps, then cpu), cpu, cuda or mps."""
    dtype: DtypeName = "float32"
    """Inference precision (float32 keeps LeRobot parity; bfloat16 is faster on GPUs and AMX CPUs)."""
    vlm_dir: Path | None = None
    """Local SmolVLM dir, if the checkpoint's vlm_model_name is not a local path."""
    num_steps: int | None = None
    """SmolVLA: flow-matching steps per chunk (default: the checkpoint's, 10); fewer is faster, coarser."""
    int8: bool = False
    """SmolVLA on CPU: dynamic int8 quantisation of the VLM and expert linear layers (faster, approximate)."""
    threads: int | None = None
    """CPU threads for torch."""
    max_clients: int | None = None
    """Exit after serving this many clients (default: serve forever)."""


def main(args: Args) -> None:
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    predictor = Predictor.load(args.policy_path, device=args.device, dtype=args.dtype, vlm_dir=args.vlm_dir,
                               num_steps=args.num_steps, int8=args.int8)
    server = PolicyServer(predictor, args.host, args.port)
    host, port = server.address
    print(f"policy server listening on {host}:{port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve(args.max_clients)


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Args))
