"""Speed of the sysid replay: all bench runs in one multi-pendulum model vs one model per run.

    python scripts/bench_sysid.py [--data /work/shared/data/sts3215-pendulum] [--fit]

Prints JSON: wall seconds to simulate every run both ways (same parameters, same results), their
ratio, simulated seconds per wall second, and with --fit the wall time of a full `sysid fit`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from so101lab.envs.servo import ServoParams
from so101lab.sysid.fit import START, fit
from so101lab.sysid.logs import load_logs
from so101lab.sysid.simulate import simulate


def timed(fn, repeats: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data/sts3215-pendulum")
    parser.add_argument("--fit", action="store_true", help="also time a full fit from the generic start")
    args = parser.parse_args()
    logs = load_logs(args.data)
    params = ServoParams()
    batched_s, batched = timed(lambda: simulate(logs, params))
    separate_s, separate = timed(lambda: [simulate([log], params)[0] for log in logs])
    largest_gap = max(float(np.max(np.abs(a - b))) for a, b in zip(batched, separate, strict=True))
    simulated = sum(log.duration for log in logs)
    report = {
        "runs": len(logs), "simulated_s": round(simulated, 1),
        "batched_wall_s": round(batched_s, 3), "per_run_models_wall_s": round(separate_s, 3),
        "speedup_batched": round(separate_s / batched_s, 2),
        "realtime_factor_batched": round(simulated / batched_s, 1),
        "max_abs_difference_rad": largest_gap,
    }
    if args.fit:
        start = time.perf_counter()
        result = fit(logs, START)
        report["fit_wall_s"] = round(time.perf_counter() - start, 1)
        report["fit_evaluations"] = result.evaluations
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
