"""Start a virtual SO-101 behind a pseudo-terminal and print the port to give the other commands.

    so101lab virtual-arm --task PickCube          # the arm in the PickCube scene (MuJoCo)
    so101lab virtual-arm --task none --factory    # bare motors as shipped: try setup-motors

Every hardware command then works against it (`--port /dev/pts/N`). With a task, the scene's
cameras, episode resets and success are served on a Unix socket too: give record/replay/deploy
`--port virtual@<socket>` (printed at start) to use them from another shell.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from so101lab.real.calibration import save_calibration
from so101lab.real.virtual_arm import Faults, VirtualArm
from so101lab.real.virtual_remote import WorldServer
from so101lab.real.virtual_world import VirtualWorld


@dataclass
class Args:
    task: str = "PickCube"
    """Sim task whose scene the arm lives in, or 'none' for the bus alone (the arm in PickCube's scene, no
    cameras or episode server)."""
    seed: int = 0
    """Seed of the scene and of the motors' assembly offsets."""
    factory: bool = False
    """Motors as shipped (all id 1): run setup-motors first."""
    calibration_out: Path | None = None
    """Also write the calibration file a user would record on this arm (skips `calibrate`)."""
    noise_ticks: float = 0.0
    """Std of encoder noise (ticks)."""
    drop_rate: float = 0.0
    """Probability that a reply packet is lost."""
    corrupt_rate: float = 0.0
    """Probability that a reply packet has a corrupted byte."""
    seconds: float | None = None
    """Stop after this many seconds (default: run until Ctrl-C)."""
    socket: Path | None = None
    """Unix socket serving the scene's cameras and episodes (default /tmp/so101lab-virtual-<pid>.sock)."""


def main(args: Args) -> None:
    faults = Faults(noise_ticks=args.noise_ticks, drop_rate=args.drop_rate, corrupt_rate=args.corrupt_rate)
    if args.task.lower() == "none":
        world = None
        arm = VirtualArm(faults=faults, factory=args.factory, seed=args.seed)
    else:
        world = VirtualWorld(args.task, faults=faults, seed=args.seed, factory=args.factory)
        arm = world.arm
    if args.calibration_out is not None:
        if world is None:
            raise SystemExit("--calibration-out needs a --task scene (its joint ranges)")
        print(f"calibration: {save_calibration(world.calibration(), args.calibration_out)}", flush=True)
    server = None
    socket_path = args.socket or Path(f"/tmp/so101lab-virtual-{os.getpid()}.sock")
    try:  # from here on every exit (Ctrl-C, SIGTERM, SIGHUP, an error) stops the arm and removes the socket
        arm.start()
        print(f"port: {arm.port}", flush=True)
        if world is not None:
            server = WorldServer(world, socket_path)
            print(f"with cameras and episodes: --port virtual@{server.path}", flush=True)
        print("virtual SO-101 running; Ctrl-C to stop", flush=True)
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.1)
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM/SIGHUP through the CLI: a normal stop
        pass
    finally:
        if server is not None:
            server.close()
        if world is not None:  # also when a signal came while the server was starting
            socket_path.unlink(missing_ok=True)
        if world is not None:
            world.stop()
        else:
            arm.stop()
        print(f"stopped after {arm.packets} packets", flush=True)
