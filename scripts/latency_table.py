"""Success versus inference latency in sim, synchronous versus async chunk execution: a table and a plot.

    python scripts/latency_table.py \
        --policy-path outputs/experiments/pick-cube-act-robustness/plain/train/checkpoints/002400 \
        --env so101lab/PickCube-nominal-v0 --episodes 20 --latencies 0 100 300 1000 \
        --out docs/results/latency_pick_cube_act

For every latency, ``so101lab eval`` runs the same seeds twice on simulated time (the world keeps
moving while the policy computes): ``sync`` (ask for a chunk when the queue is empty, hold still
until it lands, run its first n_action_steps) and ``async`` (a policy server process; ask when the
queue is at ``--threshold`` of the chunk, drop actions overtaken by time, merge overlaps by
``--aggregate``). ``--rtc`` adds an async row with real-time chunking (SmolVLA only). Writes
``latency.json`` (every run's aggregated metrics), ``latency.md`` (the table) and ``latency.png``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from so101lab.experiments import eval as evaluate
from so101lab.inference.process import spawned_server


@dataclass
class Args:
    policy_path: Path
    """Policy directory or training checkpoint."""
    env: str = "so101lab/PickCube-v0"
    """Sim task."""
    episodes: int = 50
    """Episodes per (mode, latency); seeds --seed .. --seed + episodes - 1, the same for every run."""
    batch_size: int = 10
    """Envs stepped together."""
    latencies: tuple[float, ...] = (0.0, 100.0, 300.0, 1000.0)
    """Declared inference latencies (ms)."""
    modes: tuple[str, ...] = ("sync", "async")
    """Execution modes to compare."""
    rtc: bool = False
    """Also run async with real-time chunking (SmolVLA)."""
    threshold: float = 0.5
    """async: request at this fraction of the chunk."""
    aggregate: str = "weighted"
    """async: latest, average or weighted."""
    seed: int = 1000
    """First episode seed."""
    max_steps: int | None = None
    """Cut episodes (default: the env's limit)."""
    threads: int | None = 1
    """torch threads (eval and server)."""
    vlm_dir: Path | None = None
    """Local SmolVLM dir for SmolVLA checkpoints."""
    eval_kwargs: dict[str, str] = field(default_factory=dict)
    """Extra eval Args (e.g. visual=primitive) for smoke runs."""
    out: Path = Path("outputs/latency")
    """Output directory."""
    server: str | None = None
    """host:port of a running policy server for the async runs (default: spawn one)."""


def run(args: Args) -> dict:
    args.out.mkdir(parents=True, exist_ok=True)
    extra = {k: (v == "true" if v in ("true", "false") else v) for k, v in args.eval_kwargs.items()}
    rows = []
    server_args = ["--policy-path", str(args.policy_path), "--device", "cpu"]
    server_args += ["--threads", str(args.threads)] if args.threads else []
    server_args += ["--vlm-dir", str(args.vlm_dir)] if args.vlm_dir else []
    variants = [(m, False) for m in args.modes] + ([("async", True)] if args.rtc else [])
    with contextlib.ExitStack() as stack:
        address = args.server or stack.enter_context(spawned_server(server_args))
        for latency in args.latencies:
            for mode, rtc in variants:
                name = f"{mode}{'_rtc' if rtc else ''}_{latency:g}ms"
                eargs = evaluate.Args(policy_path=args.policy_path, env=args.env, n_episodes=args.episodes,
                                      batch_size=args.batch_size, seed=args.seed, output_dir=args.out / name,
                                      max_videos=0, max_steps=args.max_steps, threads=args.threads,
                                      vlm_dir=args.vlm_dir, latency_ms=latency, async_inference=mode == "async",
                                      threshold=args.threshold, aggregate=args.aggregate, rtc=rtc,
                                      server=address if mode == "async" else None, **extra)
                agg = evaluate.main(eargs)["aggregated"]
                inf = agg["inference"]
                rows.append({"mode": mode + ("+rtc" if rtc else ""), "latency_ms": latency,
                             "pc_success": agg["pc_success"], "pc_success_ci95": agg["pc_success_ci95"],
                             "stall_fraction": inf["stalls"] / max(1, inf["steps"]),
                             "wait_fraction": (inf["stalls"] + inf["startup_holds"]) / max(1, inf["steps"]),
                             "jerk_boundary_mean": inf["jerk_boundary_mean"], "jerk_mean": inf["jerk_mean"],
                             "avg_max_reward": agg["avg_max_reward"], "n_episodes": agg["n_episodes"]})
    result = {"policy_path": str(args.policy_path), "env": args.env, "episodes": args.episodes,
              "threshold": args.threshold, "aggregate": args.aggregate, "rows": rows}
    (args.out / "latency.json").write_text(json.dumps(result, indent=2))
    (args.out / "latency.md").write_text(table(rows))
    plot(rows, args.out / "latency.png", f"{args.env.split('/')[-1]}: {Path(args.policy_path).name}")
    print(table(rows))
    return result


def table(rows: list[dict]) -> str:
    """Markdown: one row per latency, success (95 % CI) and stall fraction per mode."""
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    head = "| latency (ms) | " + " | ".join(f"{m} success (95 % CI) | {m} steps waited" for m in modes) + " |"
    lines = [head, "|---" * (1 + 2 * len(modes)) + "|"]
    for latency in dict.fromkeys(r["latency_ms"] for r in rows):
        cells = []
        for m in modes:
            r = next(r for r in rows if r["mode"] == m and r["latency_ms"] == latency)
            low, high = r["pc_success_ci95"]
            cells += [f"{r['pc_success']:.0f} % ({low:.0f}-{high:.0f})", f"{100 * r['wait_fraction']:.0f} %"]
        lines.append(f"| {latency:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for mode in dict.fromkeys(r["mode"] for r in rows):
        rs = [r for r in rows if r["mode"] == mode]
        x = [r["latency_ms"] for r in rs]
        y = [r["pc_success"] for r in rs]
        err = [[r["pc_success"] - r["pc_success_ci95"][0] for r in rs],
               [r["pc_success_ci95"][1] - r["pc_success"] for r in rs]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=mode)
        ax2.plot(x, [100 * r["wait_fraction"] for r in rs], marker="o", label=mode)
    ax.set(xlabel="inference latency (ms)", ylabel="success (%)", ylim=(0, 100), title=title)
    ax2.set(xlabel="inference latency (ms)", ylabel="steps the arm waited (%)", ylim=(0, 100))
    for a in (ax, ax2):
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    run(tyro.cli(Args))
