"""Fit `ServoParams` to servo logs with scipy's bounded least squares (trust region reflective).

The residuals are every log's simulated-minus-measured positions, scaled so each log counts as
its mean squared error whatever its length; the parameters are searched in units of their own
typical size so one finite-difference step suits all of them.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from so101lab.envs.servo import ServoParams
from so101lab.sysid.logs import ServoLog
from so101lab.sysid.simulate import simulate

# field -> (lower, upper, typical size); the physically sensible search box of each parameter.
BOUNDS: dict[str, tuple[float, float, float]] = {
    "kp_per_p": (0.05, 100.0, 1.0),
    "kv": (0.0, 5.0, 0.1),
    "force_limit": (0.3, 10.0, 3.0),
    "damping": (0.0, 10.0, 0.5),
    "damping_off": (0.0, 10.0, 0.1),
    "armature": (1e-4, 0.2, 0.01),
    "frictionloss": (0.0, 2.0, 0.1),
    "friction_load": (0.0, 2.0, 0.1),
    "latency": (0.0, 0.2, 0.03),
    "max_velocity": (0.5, 50.0, 5.0),
}
DEFAULT_FIELDS: tuple[str, ...] = ("kp_per_p", "kv", "force_limit", "damping", "damping_off", "armature",
                                   "frictionloss", "friction_load", "latency", "max_velocity")
# A generic starting point (round figures of the right order, not a previous fit), so a fit is
# reproducible from the data alone.
START = ServoParams(kp_per_p=1.0, kv=0.1, force_limit=3.0, damping=0.5, damping_off=0.1, armature=0.01,
                    frictionloss=0.1, friction_load=0.1, latency=0.03, max_velocity=5.0)


@dataclass
class FitResult:
    params: ServoParams
    cost: float  # mean over logs of the mean squared error (rad^2)
    initial_cost: float
    evaluations: int
    seconds: float
    message: str


def residuals(logs: list[ServoLog], params: ServoParams, physics_dt: float | None = None) -> np.ndarray:
    """Simulated minus measured positions of all logs, each scaled by 1/sqrt(its sample count)."""
    sims = simulate(logs, params, physics_dt)
    return np.concatenate([((sim - log.pos) / np.sqrt(sim.size)).ravel()
                           for log, sim in zip(logs, sims, strict=True)])


def fit(logs: list[ServoLog], initial: ServoParams | None = None, fields: tuple[str, ...] = DEFAULT_FIELDS,
        max_evaluations: int = 400, physics_dt: float | None = None, verbose: bool = False) -> FitResult:
    """Least-squares fit of `fields` of the servo parameters, the others held at `initial`."""
    if not logs:
        raise ValueError("fit: no logs given")
    unknown = [f for f in fields if f not in BOUNDS]
    if unknown:
        raise ValueError(f"fit: cannot fit {unknown}; fittable parameters are {sorted(BOUNDS)}")
    initial = initial or ServoParams()
    scale = np.array([BOUNDS[f][2] for f in fields])
    lower = np.array([BOUNDS[f][0] for f in fields]) / scale
    upper = np.array([BOUNDS[f][1] for f in fields]) / scale
    x0 = np.clip(np.array([getattr(initial, f) for f in fields]) / scale, lower, upper)
    # Start strictly inside the box: a parameter sitting on a bound gets one-sided derivatives only.
    x0 = np.clip(x0, lower + 1e-3 * (upper - lower), upper - 1e-3 * (upper - lower))

    def params_of(x: np.ndarray) -> ServoParams:
        return dataclasses.replace(initial, **{f: float(v) for f, v in zip(fields, x * scale, strict=True)})

    def fun(x: np.ndarray) -> np.ndarray:
        return residuals(logs, params_of(x), physics_dt) / np.sqrt(len(logs))

    start = time.perf_counter()
    initial_cost = float(np.sum(fun(x0) ** 2))
    result = least_squares(fun, x0, bounds=(lower, upper), x_scale=1.0, diff_step=1e-3,
                           max_nfev=max_evaluations, verbose=2 if verbose else 0)
    return FitResult(
        params=params_of(result.x), cost=float(2 * result.cost), initial_cost=initial_cost,
        evaluations=int(result.nfev), seconds=time.perf_counter() - start, message=str(result.message),
    )
