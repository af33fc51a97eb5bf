"""Benchmark SmolVLA on CPU: action-chunk latency and training samples/s, ours vs LeRobot's.

    python scripts/bench_policy.py --presets tiny small full \
        [--lerobot-python /root/.cache/lerobot-ref/bin/python]

Random weights, two 480x640 cameras (resized to the preset's resolution), one task string.
Latency: one ``predict_action_chunk`` (processor + prefix + 10 Euler steps) at batch 1.
Training: processor + forward + backward + AdamW step at ``--batch-size``. Each side runs
``--rounds`` times in fresh processes, alternating, ``--reps`` timings each; the JSON gives
min and median, ratios use the min (least disturbed by other jobs on a shared machine).
With ``--lerobot-python`` the same measurements run in LeRobot 0.4.4's environment on the
same config in the same run (this script re-invoked with ``--role lerobot``), and the JSON
gets ``ratio`` = LeRobot time / ours (>= 1 means ours is not slower). Prints one JSON object.

``--options fp32 bf16 int8 steps5 int8+steps5`` also times our chunk under each inference option
(``bf16``: weights cast and autocast; ``int8``: dynamic int8 linear layers in the VLM and expert;
``stepsN``: N flow-matching steps instead of 10; ``+`` combines) on the same weights, inputs and
noise, with each option's effect on the chunk: max |chunk - fp32 chunk| in action units, next to
the fp32 chunk's own max |value|. With options, the JSON also gives the chunk's matrix-product work
(GFLOP, counted by torch), the rate it ran at, and this CPU's float32 matrix-product throughput on a
vision-tower-sized layer: ``fp32_floor_s`` = work / throughput is what no float32 kernel tuning can
beat on this machine (int8 and bf16 kernels have their own ceilings; their effective rate shows them).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CAMERAS = ("front", "wrist")
IMAGE_HW = (480, 640)
TASK = "pick up the red cube and put it in the bowl"


def _presets_module():
    # By path, so the LeRobot role does not import so101lab (and MuJoCo) in the other venv.
    spec = importlib.util.spec_from_file_location("vlm_presets", ROOT / "so101lab/policies/vlm_presets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _raw_batch(batch: int, chunk: int, gen: torch.Generator) -> dict[str, object]:
    out: dict[str, object] = {
        "observation.state": torch.randn(batch, 6, generator=gen) * 20,
        "action": torch.randn(batch, chunk, 6, generator=gen) * 20,
        "task": [TASK] * batch,
    }
    for cam in CAMERAS:
        out[f"observation.images.{cam}"] = torch.rand(batch, 3, *IMAGE_HW, generator=gen)
    return out


def _stats() -> dict[str, dict[str, torch.Tensor]]:
    return {k: {"mean": torch.zeros(6), "std": torch.full((6,), 10.0)} for k in ("observation.state", "action")}


def _times(fn, reps: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def _measure(chunk_fn, train_fn, batch_size: int, reps: int) -> dict[str, object]:
    return {
        "chunk_s": _times(chunk_fn, reps),
        "train_step_s": _times(train_fn, reps),
        "batch_size": batch_size,
    }


def _summary(runs: list[dict]) -> dict[str, float]:
    """Best (min) and median over all rounds: the min is least disturbed by other jobs on the box."""
    chunk = [t for r in runs for t in r["chunk_s"]]
    step = [t for r in runs for t in r["train_step_s"]]
    batch = runs[0]["batch_size"]
    return {
        "chunk_latency_s_min": min(chunk), "chunk_latency_s_median": statistics.median(chunk),
        "train_step_s_min": min(step), "train_step_s_median": statistics.median(step),
        "train_samples_per_s": batch / min(step),
    }  # fmt: skip


def bench_ours(vlm_dir: Path, preset: str, chunk: int, batch_size: int, reps: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from so101lab.policies import SmolVLAPolicy
    from so101lab.policies.smolvla_config import preset_config

    torch.manual_seed(0)
    config = preset_config(preset, vlm_dir, CAMERAS, IMAGE_HW, chunk_size=chunk, n_action_steps=chunk)
    policy = SmolVLAPolicy(config, vlm_dir, _stats())
    gen = torch.Generator().manual_seed(0)
    one, train_batch = _raw_batch(1, chunk, gen), _raw_batch(batch_size, chunk, gen)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-10)

    def train_step() -> None:
        policy.train()
        loss, _ = policy.loss(train_batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()

    return _measure(lambda: policy.predict_action_chunk(one), train_step, batch_size, reps)


def bench_options(vlm_dir: Path, preset: str, chunk: int, reps: int, options: list[str]) -> dict[str, object]:
    """Chunk latency and max abs diff vs fp32 of each inference option, on one set of weights."""
    sys.path.insert(0, str(ROOT))
    from so101lab.inference.predictor import quantize_int8
    from so101lab.policies import SmolVLAPolicy
    from so101lab.policies.smolvla_config import preset_config

    config = preset_config(preset, vlm_dir, CAMERAS, IMAGE_HW, chunk_size=chunk, n_action_steps=chunk)
    torch.manual_seed(0)
    state = SmolVLAPolicy(config, vlm_dir, _stats()).state_dict()
    one = _raw_batch(1, chunk, torch.Generator().manual_seed(0))
    noise = torch.randn(1, chunk, config.max_action_dim, generator=torch.Generator().manual_seed(1))
    fp32_gflops = gemm_throughput()
    gflop_by_steps: dict[int, float] = {}  # the work depends on the step count only, not on the precision
    out: dict[str, object] = {}
    reference = None
    for option in ["fp32", *[o for o in options if o != "fp32"]]:
        policy = SmolVLAPolicy(config, vlm_dir, _stats())
        policy.load_state_dict(state)
        parts = option.split("+")
        for part in parts:
            if part.startswith("steps"):
                policy.config.num_steps = int(part.removeprefix("steps"))
            elif part not in ("fp32", "bf16", "int8"):
                raise ValueError(f"unknown option {part!r} (fp32, bf16, int8, stepsN, combined with +)")
        steps = policy.config.num_steps
        if steps not in gflop_by_steps:  # counted in float32, before any cast: the same work in every precision
            gflop_by_steps[steps] = chunk_gflop(policy, one)
        gflop = gflop_by_steps[steps]
        if "bf16" in parts:
            policy.set_inference_precision(torch.bfloat16)
        if "int8" in parts:
            quantize_int8(policy)
        chunk_out = policy.predict_action_chunk(one, noise)
        reference = chunk_out if reference is None else reference
        times = _times(lambda policy=policy: policy.predict_action_chunk(one, noise), reps)
        out[option] = {"chunk_latency_s_min": min(times), "chunk_latency_s_median": statistics.median(times),
                       "max_abs_diff_vs_fp32": float((chunk_out - reference).abs().max()),
                       "fp32_max_abs": float(reference.abs().max()), "gflop": gflop,
                       "effective_gflops": gflop / min(times),
                       "fp32_floor_s": gflop / fp32_gflops}
        del policy
    return {"fp32_matmul_gflops": fp32_gflops, "options": out}


def gemm_throughput(reps: int = 5) -> float:
    """Best float32 GFLOP/s of one vision-tower MLP layer (2 x 1,024 patches, 768 -> 3,072)."""
    linear = torch.nn.Linear(768, 3072)
    x = torch.randn(2048, 768)
    flop = 2 * x.shape[0] * linear.in_features * linear.out_features
    with torch.no_grad():
        return flop / min(_times(lambda: linear(x), reps)) / 1e9


def chunk_gflop(policy, batch: dict) -> float:
    """Matrix-product work of one chunk, attention included (torch's FLOP counter; it has no formula for
    the CPU flash-attention kernel, so that one is given here)."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_flash_attention(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    attention = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    counter = FlopCounterMode(display=False, custom_mapping={attention: cpu_flash_attention})
    with counter:
        policy.predict_action_chunk(batch)
    return counter.get_total_flops() / 1e9


def bench_lerobot(vlm_dir: Path, preset: str, chunk: int, batch_size: int, reps: int) -> dict[str, float]:
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    presets = _presets_module()
    size = presets.PRESETS[preset]["vision"]["image_size"]
    inputs = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(6,))}
    for cam in CAMERAS:
        inputs[f"observation.images.{cam}"] = PolicyFeature(type=FeatureType.VISUAL, shape=(3, *IMAGE_HW))
    config = SmolVLAConfig(
        input_features=inputs,
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(6,))},
        device="cpu", vlm_model_name=str(vlm_dir), chunk_size=chunk, n_action_steps=chunk,
        num_vlm_layers=presets.PRESETS[preset]["num_vlm_layers"], resize_imgs_with_padding=(size, size),
        push_to_hub=False,
    )  # fmt: skip
    torch.manual_seed(0)
    policy = SmolVLAPolicy(config)
    pre, post = make_smolvla_pre_post_processors(config, dataset_stats=_stats())
    gen = torch.Generator().manual_seed(0)
    one, train_batch = _raw_batch(1, chunk, gen), _raw_batch(batch_size, chunk, gen)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-10)

    def chunk_fn() -> None:
        policy.eval()
        with torch.no_grad():
            post(policy.predict_action_chunk(pre(dict(one))))

    def train_step() -> None:
        policy.train()
        loss, _ = policy.forward(pre(dict(train_batch)))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()

    return _measure(chunk_fn, train_step, batch_size, reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "full"])
    parser.add_argument("--lerobot-python", type=Path, default=None)
    parser.add_argument("--chunk-size", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 8 (tiny/small), 1 (full)")
    parser.add_argument("--reps", type=int, default=None, help="default: 10 (tiny/small), 2 (full)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating ours/LeRobot rounds")
    parser.add_argument("--options", nargs="*", default=[],
                        help="inference options to time on ours: fp32 bf16 int8 stepsN, combined with +")
    parser.add_argument("--options-only", action="store_true", help="skip the ours/LeRobot chunk+training runs")
    parser.add_argument("--role", choices=["ours", "lerobot", "options"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--vlm-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.role == "options":
        print(json.dumps(bench_options(args.vlm_dir, args.presets[0], args.chunk_size, args.reps, args.options)))
        return
    if args.role is not None:  # one measurement in this interpreter, for the parent run
        preset = args.presets[0]
        fn = bench_ours if args.role == "ours" else bench_lerobot
        print(json.dumps(fn(args.vlm_dir, preset, args.chunk_size, args.batch_size, args.reps)))
        return
    presets = _presets_module()
    report: dict[str, object] = {
        "torch_threads": torch.get_num_threads(), "chunk_size": args.chunk_size, "rounds": args.rounds,
        "loadavg_start": os.getloadavg(),
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            vlm = presets.write_vlm_dir(Path(tmp) / preset, preset)
            batch = args.batch_size or (1 if preset == "full" else 8)
            reps = args.reps or (2 if preset == "full" else 10)
            row: dict[str, object] = {"batch_size": batch, "reps": reps}
            pythons = {} if args.options_only else {"ours": Path(sys.executable)}
            if args.lerobot_python is not None and not args.options_only:
                pythons["lerobot"] = args.lerobot_python
            runs: dict[str, list[dict]] = {role: [] for role in pythons}
            for _ in range(args.rounds):  # alternate, each in a fresh process, so load hits both alike
                for role, python in pythons.items():
                    cmd = [str(python), __file__, "--role", role, "--presets", preset, "--vlm-dir", str(vlm)]
                    cmd += ["--chunk-size", str(args.chunk_size), "--batch-size", str(batch)]
                    cmd += ["--reps", str(reps), "--threads", str(torch.get_num_threads())]
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode != 0:
                        raise RuntimeError(f"{role} benchmark of {preset} failed:\n{proc.stderr[-3000:]}")
                    runs[role].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            for role, role_runs in runs.items():
                row[role] = _summary(role_runs)
            if "lerobot" in row:
                ours, theirs = row["ours"], row["lerobot"]
                row["ratio"] = {
                    "chunk_latency": theirs["chunk_latency_s_min"] / ours["chunk_latency_s_min"],
                    "train_samples_per_s": ours["train_samples_per_s"] / theirs["train_samples_per_s"],
                }
            if args.options:
                cmd = [sys.executable, __file__, "--role", "options", "--presets", preset, "--vlm-dir", str(vlm),
                       "--chunk-size", str(args.chunk_size), "--reps", str(reps), "--threads",
                       str(torch.get_num_threads()), "--options", *args.options]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"options benchmark of {preset} failed:\n{proc.stderr[-3000:]}")
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                row["options"], row["fp32_matmul_gflops"] = result["options"], result["fp32_matmul_gflops"]
                _print_options(preset, row)
            report[preset] = row
    report["loadavg_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


def _print_options(preset: str, row: dict) -> None:
    """One line per option: latency, speed-up over our fp32, LeRobot's fp32 latency, effect on the chunk."""
    theirs = row.get("lerobot", {}).get("chunk_latency_s_min")
    base = row["options"]["fp32"]["chunk_latency_s_min"]
    print(f"{preset}: chunk latency per option (LeRobot fp32: {theirs:.3f} s)" if theirs else f"{preset}:",
          file=sys.stderr)
    print(f"  float32 matrix products on this CPU: {row['fp32_matmul_gflops']:.0f} GFLOP/s", file=sys.stderr)
    for option, r in row["options"].items():
        print(f"  {option:<14} {r['chunk_latency_s_min']:8.3f} s  x{base / r['chunk_latency_s_min']:5.2f}  "
              f"{r['gflop']:7.1f} GFLOP at {r['effective_gflops']:4.0f} GFLOP/s (fp32 floor {r['fp32_floor_s']:.2f} s) "
              f"max |diff| vs fp32 {r['max_abs_diff_vs_fp32']:.4f} (fp32 chunk max |a| {r['fp32_max_abs']:.1f})",
              file=sys.stderr)


if __name__ == "__main__":
    main()
