"""How well a servo model reproduces servo logs: RMS position error per run, per type, overall."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from so101lab.envs.servo import ServoParams
from so101lab.sysid.logs import ServoLog
from so101lab.sysid.simulate import rms_error, simulate


def summarize(logs: list[ServoLog], sims: list[np.ndarray]) -> dict:
    """RMS error (rad) per run, median and mean per trajectory type and per firmware P, overall."""
    errors = {log.name: rms_error(log, sim) for log, sim in zip(logs, sims, strict=True)}
    by_type: dict[str, list[float]] = defaultdict(list)
    by_p: dict[str, list[float]] = defaultdict(list)
    for log in logs:
        by_type[log.trajectory].append(errors[log.name])
        by_p["/".join(f"{p:g}" for p in np.unique(log.p_gain))].append(errors[log.name])

    def stats(values: list[float]) -> dict[str, float | int]:
        return {"median": float(np.median(values)), "mean": float(np.mean(values)),
                "max": float(np.max(values)), "runs": len(values)}

    return {
        "median_rms": float(np.median(list(errors.values()))),
        "mean_rms": float(np.mean(list(errors.values()))),
        "runs": len(errors),
        "per_trajectory": {k: stats(v) for k, v in sorted(by_type.items())},
        "per_p_gain": {k: stats(v) for k, v in sorted(by_p.items(), key=lambda kv: float(kv[0].split("/")[0]))
                       },
        "per_run": errors,
    }


def evaluate(logs: list[ServoLog], params: ServoParams, physics_dt: float | None = None
             ) -> tuple[dict, list[np.ndarray]]:
    """Simulate every log with `params`; returns the summary (plus the parameters) and the traces."""
    sims = simulate(logs, params, physics_dt)
    report = summarize(logs, sims)
    report["params"] = params.to_dict()
    return report, sims


def baseline_params() -> ServoParams:
    """The textbook servo the SO-101 model started from (facts sheet, kp = 998.22 * P / 16, no
    latency or slew limit): the reference the identified model is compared with."""
    return ServoParams(kp_per_p=998.22 / 16, kv=2.731, force_limit=3.35, damping=0.60, damping_off=0.60,
                       armature=0.028, frictionloss=0.052, friction_load=0.0, latency=0.0,
                       max_velocity=float("inf"))


def split_by_p_gain(logs: list[ServoLog], held_out: float) -> tuple[list[ServoLog], list[ServoLog]]:
    """(logs whose P differs from `held_out`, logs at `held_out`): a generalisation split."""
    test = [log for log in logs if np.all(log.p_gain == held_out)]
    train = [log for log in logs if not np.any(log.p_gain == held_out)]
    if not test or not train:
        raise ValueError(f"split_by_p_gain: P = {held_out:g} leaves {len(train)} training "
                         f"and {len(test)} test logs")
    return train, test
