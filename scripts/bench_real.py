"""Benchmark the hardware stack over the virtual arm (real pty, 1 Mbaud settings); prints JSON.

    python scripts/bench_real.py [--reads 2000] [--ticks 300]

- sync_read: one SYNC_READ of the six Present_Position registers (ms per call).
- tick_*: full Real-v0 steps (write goals, wait for the 30 Hz tick, read state, grab frames):
  `work` is the time spent outside the sleep, `period_error` is |period - 33.3 ms| (jitter).
  With ``ffmpeg`` cameras two 640x480 test sources are read by background readers (the path of
  real v4l2 cameras); with ``virtual`` cameras the MuJoCo scene is rendered in the loop.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from so101lab.contract import CONTROL_DT
from so101lab.real.bus import FeetechBus
from so101lab.real.cameras import FFmpegCamera
from so101lab.real.env import SO101RealEnv
from so101lab.real.virtual_world import VirtualWorld


def percentiles(ms: np.ndarray) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)} | {
        "mean": round(float(ms.mean()), 3), "max": round(float(ms.max()), 3), "n": len(ms)}


def bench_sync_read(world: VirtualWorld, n: int) -> dict:
    with FeetechBus(world.port) as bus:
        bus.sync_read("Present_Position", range(1, 7))
        times = []
        for _ in range(n):
            t = time.perf_counter()
            bus.sync_read("Present_Position", range(1, 7))
            times.append(time.perf_counter() - t)
    return percentiles(np.array(times) * 1e3)


def bench_ticks(world: VirtualWorld, cameras: dict, n: int) -> dict:
    env = SO101RealEnv(world.port, world.calibration(), cameras, max_relative_target=10.0)
    try:
        obs, _ = env.reset()
        hold = obs["agent_pos"]
        stamps = []
        for i in range(n):
            env.step(hold + np.array([5.0 * np.sin(i / 15), 0, 0, 0, 0, 0], dtype=np.float32))
            stamps.append(time.perf_counter())
        periods = np.diff(stamps)
        # The work of a tick (what the sleep leaves room for), timed without the env's sleep.
        work = []
        for i in range(min(n, 100)):
            t0 = time.perf_counter()
            env.arm.send(hold + np.array([5.0 * np.sin(i / 15), 0, 0, 0, 0, 0]))
            env._observation()
            work.append(time.perf_counter() - t0)
            time.sleep(CONTROL_DT / 2)
        return {"work_ms": percentiles(np.array(work) * 1e3),
                "period_error_ms": percentiles(np.abs(periods - CONTROL_DT) * 1e3),
                "overruns": env.overruns}
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--ticks", type=int, default=300)
    args = parser.parse_args()
    out: dict = {"machine": platform.processor() or platform.machine(), "baudrate": 1_000_000}
    with VirtualWorld("PickCube", seed=0) as world:
        out["sync_read_6_positions_ms"] = bench_sync_read(world, args.reads)
        out["tick_no_cameras"] = bench_ticks(world, {}, args.ticks)
        test_src = "testsrc=size=640x480:rate=30"
        cams = {n: FFmpegCamera(test_src, input_format="lavfi") for n in ("front", "wrist")}
        out["tick_ffmpeg_cameras_2x640x480"] = bench_ticks(world, cams, args.ticks)
        cams = {n: world.camera(n) for n in ("front", "wrist")}
        out["tick_virtual_cameras_2x640x480"] = bench_ticks(world, cams, args.ticks)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
