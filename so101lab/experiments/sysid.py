"""Identify the servo model from servo logs, and measure how well a model reproduces them.

    so101lab sysid fit --data DIR --out servo.json [--train-p-gains 8 32]
    so101lab sysid evaluate --data DIR [--params servo.json] [--plots outputs/sysid]

`fit` writes a parameter file the envs (`servo_params=...`) and the virtual arm accept and prints
JSON (parameters, cost, median RMS on the training logs and on any held-out ones). `evaluate`
simulates every log with the given parameters (default: the built-in ones), prints JSON with the
RMS position error per run, per trajectory type and the median, and writes sim-vs-real plots.
Logs are bench runs or arm logs (docs/sysid.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from so101lab.envs.servo import ServoParams
from so101lab.sysid.evaluate import baseline_params, evaluate
from so101lab.sysid.fit import DEFAULT_FIELDS, START, fit
from so101lab.sysid.logs import ServoLog, load_logs


@dataclass
class Fit:
    """Fit the servo parameters to logs (least squares over simulated vs measured positions)."""

    data: Path
    """A directory of .npz logs (or one file)."""
    out: Path
    """Where to write the fitted parameters (JSON)."""
    init: Path | None = None
    """Parameters to start from (JSON); default a fixed generic start, not the built-in defaults."""
    fields: tuple[str, ...] = DEFAULT_FIELDS
    """Parameters to fit; the others stay at their starting values."""
    train_p_gains: tuple[float, ...] = ()
    """Fit only on logs with these firmware P gains and report the others as held out (empty: all)."""
    max_evaluations: int = 400
    """Cap on simulations of the whole training set."""
    verbose: bool = False
    """Print the optimiser's progress."""


@dataclass
class Evaluate:
    """Simulate every log with a parameter file (or the defaults) and report the RMS errors."""

    data: Path
    """A directory of .npz logs (or one file)."""
    params: Path | None = None
    """Servo parameters (JSON); default the built-in (identified) ones."""
    plots: Path | None = Path("outputs/sysid")
    """Directory for sim-vs-real plots and report.json (None: no files)."""
    baseline: bool = True
    """Also simulate the textbook servo and include its errors for comparison."""


def _median(report: dict) -> float:
    return round(report["median_rms"], 5)


def run_fit(args: Fit) -> dict:
    logs = load_logs(args.data)
    train: list[ServoLog] = logs
    held_out: list[ServoLog] = []
    if args.train_p_gains:
        in_train = [bool(np.all(np.isin(log.p_gain, args.train_p_gains))) for log in logs]
        train = [log for log, keep in zip(logs, in_train, strict=True) if keep]
        held_out = [log for log, keep in zip(logs, in_train, strict=True) if not keep]
        if not train:
            raise SystemExit(f"sysid fit: no logs with P in {args.train_p_gains} under {args.data}")
    start = ServoParams.load(args.init) if args.init else START
    result = fit(train, start, tuple(args.fields), args.max_evaluations, verbose=args.verbose)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result.params.save(args.out)
    train_report, _ = evaluate(train, result.params)
    summary = {
        "params": result.params.to_dict(), "out": str(args.out), "cost": result.cost,
        "initial_cost": result.initial_cost, "evaluations": result.evaluations,
        "seconds": round(result.seconds, 1), "message": result.message,
        "train": {"runs": len(train), "median_rms": _median(train_report),
                  "per_trajectory": train_report["per_trajectory"]},
    }
    if held_out:
        test_report, _ = evaluate(held_out, result.params)
        summary["held_out"] = {"runs": len(held_out), "median_rms": _median(test_report),
                               "per_trajectory": test_report["per_trajectory"]}
        summary["held_out_over_train"] = round(test_report["median_rms"] / train_report["median_rms"], 3)
    return summary


def run_evaluate(args: Evaluate) -> dict:
    logs = load_logs(args.data)
    params = ServoParams.load(args.params) if args.params else ServoParams()
    report, sims = evaluate(logs, params)
    if args.baseline:
        base_report, base_sims = evaluate(logs, baseline_params())
        report["baseline"] = {"median_rms": base_report["median_rms"], "per_run": base_report["per_run"],
                              "per_trajectory": base_report["per_trajectory"]}
    if args.plots is not None:
        from so101lab.sysid.plots import plot_errors, plot_runs

        figures = plot_runs(logs, sims, args.plots, base_sims if args.baseline else None)
        figures.append(plot_errors(report, args.plots / "errors.png", report.get("baseline")))
        report["plots"] = [str(f) for f in figures]
        (args.plots / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(args: Fit | Evaluate) -> None:
    result = run_fit(args) if isinstance(args, Fit) else run_evaluate(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(tyro.cli(Fit | Evaluate))  # type: ignore[arg-type]
