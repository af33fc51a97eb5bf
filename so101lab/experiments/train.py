"""``so101lab train``: train SmolVLA (fresh or fine-tuned) or ACT on a LeRobot dataset, resumable exactly.

Reads top to bottom: dataset -> policy -> AdamW + cosine schedule -> loop (bf16 autocast
optional, grad clipping) with CSV/wandb metrics and checkpoints every ``save_every`` steps
under ``output_dir/checkpoints/<step>/{pretrained_model,training_state}``. The randomness of
step ``k`` (flow-matching noise and time; ACT's latent sample, dropout and image shifts) comes
from a generator seeded by (seed, k) and the data order from (seed, epoch), so a resumed run
continues with the very losses the original would have had.

SmolVLA reads frames through the dataset reader (DataLoader workers); ACT, small enough that
decoding would dominate, trains from frames decoded and resized once into memory.

Multi-GPU / multi-node: ``accelerate launch -m so101lab.experiments.cli train ...``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from so101lab.contract import FEATURE_ACTION, FEATURE_IMAGE_PREFIX, FEATURE_STATE
from so101lab.experiments.tracking import WandbMode, start_run
from so101lab.policies import ACTConfig, ACTPolicy, SmolVLAPolicy
from so101lab.policies.device import DTYPES, DeviceName, DtypeName, resolve_device
from so101lab.policies.smolvla_config import SmolVLAConfig, preset_config, so101_features
from so101lab.policies.train_state import (
    PRETRAINED,
    WeightAverage,
    cosine_with_warmup,
    load_raw_weights,
    load_training_state,
    save_raw_weights,
    save_training_state,
)
from so101lab.policies.vlm_presets import write_vlm_dir

METRICS_FILE = "metrics.csv"
METRIC_COLUMNS = ("step", "loss", "lr", "grad_norm", "samples_per_s", "wall_s")


_ACT_DEFAULTS = ACTConfig()


@dataclass
class ACTOptions:
    """Size and behaviour of a fresh ACT policy (defaults and meaning: so101lab.policies.ACTConfig)."""

    image_size: tuple[int, int] = _ACT_DEFAULTS.image_size
    """(height, width) the cameras are resized to."""
    dim_model: int = _ACT_DEFAULTS.dim_model
    """Width of the transformer (and of the CNN's last stage)."""
    n_heads: int = _ACT_DEFAULTS.n_heads
    """Attention heads; must divide dim_model."""
    dim_feedforward: int = _ACT_DEFAULTS.dim_feedforward
    """Hidden width of the transformer's feed-forward layers."""
    n_encoder_layers: int = _ACT_DEFAULTS.n_encoder_layers
    """Transformer encoder layers over the image, state and latent tokens."""
    n_decoder_layers: int = _ACT_DEFAULTS.n_decoder_layers
    """Transformer decoder layers producing the action chunk."""
    use_vae: bool = _ACT_DEFAULTS.use_vae
    """Train with ACT's latent (CVAE) encoder; off: a deterministic policy."""
    kl_weight: float = _ACT_DEFAULTS.kl_weight
    """Weight of the latent's KL term in the loss (with --act.use-vae)."""
    dropout: float = _ACT_DEFAULTS.dropout
    """Transformer dropout (0 trains faster on a CPU; see the pick-cube-act recipe)."""
    augment_shift: int = _ACT_DEFAULTS.augment_shift
    """Random image shift in pixels during training."""
    augment_color: float = _ACT_DEFAULTS.augment_color
    """Colour jitter amplitude during training (brightness, contrast, saturation, white balance); 0: off."""
    temporal_ensemble_coeff: float | None = _ACT_DEFAULTS.temporal_ensemble_coeff
    """Saved with the checkpoint: predict every step and average overlapping chunks with this coefficient."""
    weight_decay: float = _ACT_DEFAULTS.optimizer_weight_decay
    """AdamW weight decay."""


@dataclass
class Args:
    dataset: Path
    """Root of a LeRobot v3.0 dataset on disk."""
    output_dir: Path = Path("outputs/train")
    """Checkpoints, metrics.csv and wandb files go here."""
    policy: Literal["smolvla", "act"] = "smolvla"
    """Policy to train (a fresh one, or fine-tuned from --policy-path)."""
    policy_path: Path | None = None
    """Fine-tune from this checkpoint dir (e.g. a local LeRobot smolvla_base); else start fresh."""
    vlm_dir: Path | None = None
    """SmolVLA: local SmolVLM config/tokenizer dir. Fresh policies without one get the preset's layout written."""
    preset: Literal["tiny", "small", "full"] = "small"
    """SmolVLA: size of a fresh policy (ignored with --policy-path)."""
    act: ACTOptions = field(default_factory=ACTOptions)
    """ACT: size and behaviour of a fresh policy (ignored with --policy-path)."""
    steps: int = 1000
    """Total optimizer steps."""
    batch_size: int = 8
    """Samples per optimizer step and process."""
    lr: float = 1e-4
    """Peak learning rate (AdamW; SmolVLA: betas 0.9/0.95, eps 1e-8, weight decay 1e-10 as LeRobot)."""
    warmup_steps: int | None = None
    """Linear warmup steps (default: 5 % of --steps, at most LeRobot's 1,000), so short runs reach the peak."""
    decay_steps: int | None = None
    """Step at which the cosine reaches --decay-lr (default: --steps). Longer than --steps squeezes warmup
    and decay into the run in proportion, as LeRobot does."""
    decay_lr: float = 2.5e-6
    """Learning rate the cosine ends at."""
    grad_clip: float = 10.0
    """Clip the gradient's global norm to this."""
    ema_decay: float | None = None
    """Keep an exponential moving average of the weights with this decay (e.g. 0.998) and save it
    as the checkpoints' model: steadier policies from short, noisy runs. Off by default."""
    chunk_size: int = 50
    """Actions predicted per chunk (fresh policies; a loaded checkpoint keeps its own)."""
    n_action_steps: int = 50
    """Actions of each chunk run before the next prediction, saved with a fresh policy."""
    smolvla_loss: Literal["lerobot06", "lerobot04"] = "lerobot06"
    """SmolVLA's loss for a new run: LeRobot 0.6's (mean over the real action dims and in-episode
    steps) or 0.4's (mean over all 32 padded dims). A resumed run keeps its own."""
    patch_positions: Literal["transformers4", "transformers5"] | None = None
    """SmolVLA image patch position ids of --policy-path: None infers them from the checkpoint
    (docs/smolvla.md); fresh policies use transformers 4's."""
    bf16: bool = False
    """Autocast the forward pass to bfloat16 (same as --dtype bfloat16)."""
    dtype: DtypeName = "float32"
    """Autocast precision of the forward pass: float32 (none), bfloat16, or float16 (GPUs)."""
    save_every: int = 500
    """Write a checkpoint every this many steps (and at the end)."""
    log_every: int = 10
    """Write a metrics row every this many steps."""
    seed: int = 0
    """Seeds the fresh weights, the data order and every step's randomness (resumes exactly)."""
    num_workers: int = 0
    """SmolVLA: DataLoader worker processes."""
    resume: bool = False
    """Continue from the latest checkpoint in output_dir."""
    wandb: WandbMode = "offline"
    """Weights & Biases: 'offline' writes the run under output_dir/wandb (upload with `wandb sync`)."""
    stop_after: int | None = None
    """Stop after this many steps of this run (time-sliced jobs); resume later with --resume."""
    device: DeviceName = "auto"
    """auto (cuda, then mps, then cpu), cpu, cuda or mps; under accelerate launch, accelerate decides."""
    threads: int | None = None
    """CPU threads for torch (default: torch's choice, one per core). On a shared machine 1 is often
    faster: a thread that waits for a busy core stalls every parallel op."""
    augment_shift: int = 0
    """SmolVLA: random image shift in pixels during training, 0: off as in LeRobot (ACT: --act.augment-shift)."""
    augment_color: float = 0.0
    """SmolVLA: colour jitter amplitude during training, 0: off as in LeRobot (ACT: --act.augment-color)."""


def _dataset_stats(meta) -> dict[str, dict[str, torch.Tensor]]:
    keep = ("mean", "std", "min", "max")
    return {
        key: {s: torch.as_tensor(np.asarray(v), dtype=torch.float32) for s, v in st.items() if s in keep}
        for key, st in meta.stats.items()
        if key in (FEATURE_STATE, FEATURE_ACTION) or key.startswith(FEATURE_IMAGE_PREFIX)
    }


def _cameras_and_shape(meta) -> tuple[tuple[str, ...], tuple[int, int]]:
    if not meta.camera_keys:
        raise ValueError(f"dataset {meta.root} has no camera features; both policies need images")
    cams = tuple(k.removeprefix(FEATURE_IMAGE_PREFIX) for k in meta.camera_keys)
    shape = meta.features[meta.camera_keys[0]]["shape"]
    return cams, (shape[0], shape[1])


def _batches(n: int, batch_size: int, seed: int, start_step: int) -> Iterator[list[int]]:
    """Index batches of epochs shuffled by (seed, epoch), starting at global step ``start_step``."""
    per_epoch = n // batch_size
    if per_epoch == 0:
        raise ValueError(f"dataset has {n} frames, fewer than one batch of {batch_size}")
    step = start_step
    while True:
        epoch, offset = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
        for b in range(offset, per_epoch):
            yield perm[b * batch_size : (b + 1) * batch_size]
        step = (epoch + 1) * per_epoch


def schedule_steps(args: Args) -> tuple[int, int]:
    """(warmup, decay) steps of the LR schedule: the flags, or defaults sized to the run."""
    warmup = min(1000, args.steps // 20) if args.warmup_steps is None else args.warmup_steps
    return warmup, args.steps if args.decay_steps is None else args.decay_steps


def _step_seed(seed: int, step: int) -> int:
    return seed * 1_000_003 + step


def _step_noise(seed: int, step: int, batch: int, chunk: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow-matching noise and time of one step, independent of any global RNG."""
    gen = torch.Generator().manual_seed(_step_seed(seed, step))
    noise = torch.randn(batch, chunk, dim, generator=gen)
    # Beta(1.5, 1) by its inverse CDF (F(t) = t^1.5): LeRobot's law for t, but seedable.
    time = torch.rand(batch, generator=gen) ** (1 / 1.5) * 0.999 + 0.001
    return noise, time


def _latest_checkpoint(output_dir: Path) -> Path | None:
    ckpts = sorted((output_dir / "checkpoints").glob("[0-9]*"))
    return ckpts[-1] if ckpts else None


def _make_smolvla(args: Args, meta, resume_from: Path | None) -> SmolVLAPolicy:
    stats = _dataset_stats(meta)
    if resume_from is not None:
        return SmolVLAPolicy.from_pretrained(resume_from / PRETRAINED, vlm_dir=args.vlm_dir)
    if args.policy_path is not None:
        policy = SmolVLAPolicy.from_pretrained(args.policy_path, vlm_dir=args.vlm_dir,
                                               patch_positions=args.patch_positions)
        policy.config.loss = args.smolvla_loss
        # Fine-tuning adopts the dataset's cameras and normalisation stats: SmolVLA's weights do
        # not depend on camera names or count (smolvla_base calls its cameras camera1..3).
        cams, hw = _cameras_and_shape(meta)
        inputs, outputs = so101_features(cams, hw, policy.config.state_dim, policy.config.action_dim)
        policy.config.input_features, policy.config.output_features = inputs, outputs
        policy.processor.stats = stats
        return policy
    vlm = args.vlm_dir or write_vlm_dir(args.output_dir / "vlm", args.preset)
    cams, hw = _cameras_and_shape(meta)
    warmup, decay = schedule_steps(args)
    config = preset_config(
        args.preset, vlm, cams, hw,
        chunk_size=args.chunk_size, n_action_steps=args.n_action_steps,
        optimizer_lr=args.lr, scheduler_warmup_steps=warmup,
        scheduler_decay_steps=decay, scheduler_decay_lr=args.decay_lr,
        optimizer_grad_clip_norm=args.grad_clip,
        # A fresh VLM has random weights: frozen, it would only feed noise to the action expert.
        freeze_vision_encoder=False, train_expert_only=False, loss=args.smolvla_loss,
    )  # fmt: skip
    return SmolVLAPolicy(config, vlm, stats)


def _make_act(args: Args, meta, resume_from: Path | None) -> ACTPolicy:
    loaded = resume_from / PRETRAINED if resume_from is not None else args.policy_path
    if loaded is not None:
        policy = ACTPolicy.from_pretrained(loaded)
        if resume_from is None:
            policy.stats = _dataset_stats(meta)
        return policy
    cams, hw = _cameras_and_shape(meta)
    inputs, outputs = so101_features(cams, hw)
    options = asdict(args.act)
    weight_decay = options.pop("weight_decay")
    config = ACTConfig(
        input_features=inputs, output_features=outputs, chunk_size=args.chunk_size,
        n_action_steps=args.n_action_steps, optimizer_lr=args.lr, optimizer_weight_decay=weight_decay,
        optimizer_grad_clip_norm=args.grad_clip, **options,
    )  # fmt: skip
    return ACTPolicy(config, _dataset_stats(meta))


def _accelerator(args: Args):
    try:
        from accelerate import Accelerator
    except ImportError as err:
        raise ImportError("so101lab train needs accelerate (a dependency of so101lab): pip install accelerate") from err

    cpu = resolve_device(args.device).type == "cpu"  # cuda or mps: accelerate picks the accelerator
    return Accelerator(cpu=cpu, mixed_precision="no")


def autocast_dtype(args: Args) -> torch.dtype:
    """The forward pass's autocast precision (float32: autocast off)."""
    return torch.bfloat16 if args.bf16 else DTYPES[args.dtype]


def _smolvla_setup(args: Args, accel, resume_from: Path | None):
    """SmolVLA policy, its batches (DataLoader over the reader) and its loss of step k."""
    from so101lab.datasets import LeRobotDataset

    probe = LeRobotDataset(args.dataset)
    loaded = resume_from / PRETRAINED if resume_from is not None else args.policy_path
    chunk = SmolVLAConfig.load(loaded).chunk_size if loaded is not None else args.chunk_size
    dataset = LeRobotDataset(args.dataset, delta_timestamps={FEATURE_ACTION: [i / probe.fps for i in range(chunk)]})
    torch.manual_seed(args.seed)  # a fresh policy's init; a resumed run restores the RNG later
    np.random.seed(args.seed)
    policy = _make_smolvla(args, dataset.meta, resume_from)

    def batches(first_step: int) -> Iterator[dict]:
        indices = _batches(len(dataset), args.batch_size * accel.num_processes, args.seed, first_step)
        return iter(torch.utils.data.DataLoader(
            dataset, batch_sampler=_shard(indices, accel), num_workers=args.num_workers,
        ))  # fmt: skip

    def loss(wrapped, step: int, batch: dict) -> Tensor:
        batch = _augment(args, step, batch)
        bsz = batch[FEATURE_STATE].shape[0]
        global_batch = args.batch_size * accel.num_processes
        noise, t = _step_noise(args.seed, step, global_batch, chunk, policy.config.max_action_dim)
        lo, device = accel.process_index * args.batch_size, policy.device
        dtype = autocast_dtype(args)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            value, _ = wrapped(batch, noise=noise[lo : lo + bsz].to(device), time=t[lo : lo + bsz].to(device))
        return value

    return policy, batches, loss


def _augment(args: Args, step: int, batch: dict) -> dict:
    """SmolVLA's camera frames (float [B, 3, H, W] in 0..1) shifted and colour-jittered, seeded by the step."""
    if not (args.augment_shift or args.augment_color):
        return batch
    from so101lab.policies.augment import color_jitter, random_shift

    gen = torch.Generator().manual_seed(_step_seed(args.seed, step) + 1)
    return {k: color_jitter(random_shift(v, args.augment_shift, gen), args.augment_color, gen)
            if k.startswith(FEATURE_IMAGE_PREFIX) else v for k, v in batch.items()}


def _act_setup(args: Args, accel, resume_from: Path | None):
    """ACT policy, its batches (from frames decoded once into memory) and its loss of step k."""
    from so101lab.datasets import DatasetMeta
    from so101lab.datasets.memory import InMemoryDataset

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    policy = _make_act(args, DatasetMeta(args.dataset), resume_from)
    config = policy.config
    data = InMemoryDataset(args.dataset, config.image_features, policy.resize_frames,
                           progress=accel.is_main_process)  # fmt: skip

    def batches(first_step: int) -> Iterator[dict]:
        indices = _batches(len(data), args.batch_size * accel.num_processes, args.seed, first_step)
        return (data.batch(torch.tensor(i), config.chunk_size) for i in _shard(indices, accel))

    def loss(wrapped, step: int, batch: dict) -> Tensor:
        torch.manual_seed(_step_seed(args.seed, step) + accel.process_index)  # latent sample, dropout, shifts
        dtype = autocast_dtype(args)
        with torch.autocast(policy.device.type, dtype=dtype, enabled=dtype != torch.float32):
            value, _ = wrapped(batch)
        return value

    return policy, batches, loss


def _optimizer(args: Args, policy) -> tuple[list[Tensor], torch.optim.Optimizer, object]:
    config = policy.config
    params = [p for p in policy.parameters() if p.requires_grad]
    if isinstance(policy, SmolVLAPolicy):
        optimizer = torch.optim.AdamW(
            params, lr=config.optimizer_lr, betas=config.optimizer_betas, eps=config.optimizer_eps,
            weight_decay=config.optimizer_weight_decay,
        )  # fmt: skip
        scheduler = cosine_with_warmup(
            optimizer, config.optimizer_lr, config.scheduler_decay_lr, config.scheduler_warmup_steps,
            config.scheduler_decay_steps, args.steps,
        )  # fmt: skip
    else:
        optimizer = torch.optim.AdamW(params, lr=config.optimizer_lr, weight_decay=config.optimizer_weight_decay)
        scheduler = cosine_with_warmup(optimizer, config.optimizer_lr, args.decay_lr, *schedule_steps(args), args.steps)
    return params, optimizer, scheduler


def main(args: Args) -> None:
    """Dataset and policy, optimizer, then the loop: step, average, log, checkpoint."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    accel = _accelerator(args)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    resume_from = _checkpoint_to_resume(args)
    setup = _act_setup if args.policy == "act" else _smolvla_setup
    policy, batches, loss_of_step = setup(args, accel, resume_from)
    params, optimizer, scheduler = _optimizer(args, policy)
    start = 0 if resume_from is None else load_training_state(resume_from, optimizer, scheduler)["step"]
    wrapped, optimizer = accel.prepare(policy, optimizer)
    core = accel.unwrap_model(wrapped)
    average = _weight_average(args, core, resume_from)
    log = MetricsLog(args, accel, start)
    core.train()
    end = args.steps if args.stop_after is None else min(args.steps, start + args.stop_after)
    for step, batch in zip(range(start, end), batches(start), strict=False):
        loss = loss_of_step(wrapped, step, batch)
        optimizer.zero_grad(set_to_none=True)
        accel.backward(loss)
        grad_norm = accel.clip_grad_norm_(params, core.config.optimizer_grad_clip_norm)
        optimizer.step()
        scheduler.step()
        if average is not None:
            average.update(core, step)
        done = step + 1
        log.step(done, loss, grad_norm, scheduler.get_last_lr()[0], batch[FEATURE_STATE].shape[0])
        if done % args.save_every == 0 or done == end:
            _save_checkpoint(args, accel, core, average, optimizer, scheduler, done)
    log.close()


def _checkpoint_to_resume(args: Args) -> Path | None:
    if not args.resume:
        return None
    latest = _latest_checkpoint(args.output_dir)
    if latest is None:
        raise FileNotFoundError(f"--resume given but no checkpoints in {args.output_dir / 'checkpoints'}")
    return latest


def _weight_average(args: Args, core, resume_from: Path | None) -> WeightAverage | None:
    """The EMA of the weights (--ema-decay), started from the model as it stands now."""
    if args.ema_decay is None:
        return None
    average = WeightAverage(core, args.ema_decay)
    if resume_from is not None:  # the checkpoint's model is the average; training goes on from the raw weights
        load_raw_weights(resume_from, core)
    return average


def _save_checkpoint(args: Args, accel, core, average: WeightAverage | None, optimizer, scheduler, done: int) -> None:
    """``checkpoints/<step>/``: the policy (the average, with --ema-decay) and the training state."""
    accel.wait_for_everyone()
    if not accel.is_main_process:
        return
    ckpt = args.output_dir / "checkpoints" / f"{done:06d}"
    if average is None:
        core.save_pretrained(ckpt / PRETRAINED)
    else:
        with average.swapped_into(core):
            core.save_pretrained(ckpt / PRETRAINED)
        save_raw_weights(ckpt, core)
    save_training_state(ckpt, done, optimizer, scheduler, {"args": _jsonable(args)})


class MetricsLog:
    """Every ``log_every`` steps a row into metrics.csv, wandb and the progress bar (rank 0 only).

    A resumed run keeps the rows up to its checkpoint and redoes the later ones.
    """

    def __init__(self, args: Args, accel, start: int) -> None:
        self.args, self.main = args, accel.is_main_process
        self.processes = accel.num_processes
        path = args.output_dir / METRICS_FILE
        kept = _metrics_up_to(path, start) if self.main else []
        self.file = (path if self.main else Path(os.devnull)).open("w", newline="")
        self.csv = csv.writer(self.file)
        self.csv.writerows([list(METRIC_COLUMNS), *kept])
        self.run = start_run(args.wandb, args.output_dir, _jsonable(args), "train") if self.main else None
        self.bar = tqdm(total=args.steps, initial=start, disable=not self.main, desc=f"train {args.policy}")
        self.t0 = self.window_t = time.perf_counter()
        self.window_n = 0

    def step(self, done: int, loss: Tensor, grad_norm: Tensor, lr: float, batch_size: int) -> None:
        self.window_n += batch_size * self.processes
        self.bar.update(1)
        if done % self.args.log_every and done != self.args.steps:
            return
        now = time.perf_counter()
        row = {
            "step": done, "loss": float(loss.detach()), "lr": lr, "grad_norm": float(grad_norm),
            "samples_per_s": self.window_n / max(now - self.window_t, 1e-9), "wall_s": now - self.t0,
        }  # fmt: skip
        self.window_t, self.window_n = now, 0
        if self.main:
            self.csv.writerow([row[k] for k in METRIC_COLUMNS])
            self.file.flush()
            self.bar.set_postfix(loss=f"{row['loss']:.4f}")
            if self.run is not None:
                self.run.log({f"train/{k}": v for k, v in row.items() if k != "step"}, step=done)

    def close(self) -> None:
        self.bar.close()
        self.file.close()
        if self.run is not None:
            self.run.finish()


def _shard(batches: Iterator[list[int]], accel) -> Iterator[list[int]]:
    """This process's slice of each global batch."""
    n = accel.num_processes
    for global_batch in batches:
        per = len(global_batch) // n
        yield global_batch[accel.process_index * per : (accel.process_index + 1) * per]


def _metrics_up_to(path: Path, step: int) -> list[list[str]]:
    """Rows of an earlier run up to ``step`` (rows logged after the resumed checkpoint are redone)."""
    if step == 0 or not path.exists():
        return []
    with path.open() as f:
        return [row for row in list(csv.reader(f))[1:] if row and int(row[0]) <= step]


def _jsonable(args: Args) -> dict:
    return json.loads(json.dumps(asdict(args), default=str))
