"""`so101lab train` on a real (synthetic-content) LeRobot dataset with the tiny preset."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import tyro

from so101lab import contract
from so101lab.datasets.synthetic import write_synthetic
from so101lab.experiments import train
from so101lab.policies import SmolVLAPolicy
from so101lab.policies.train_state import PRETRAINED, cosine_with_warmup

CAMERAS = (contract.CameraSpec("front", 48, 64), contract.CameraSpec("wrist", 48, 64))
COMMON = ["--preset", "tiny", "--batch-size", "8", "--chunk-size", "10", "--n-action-steps", "10"]
COMMON += ["--wandb", "disabled", "--log-every", "1", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "ds"
    write_synthetic(root, [(40, "pick up the red cube"), (40, "pick up the red cube"), (30, "push")], CAMERAS)
    return root


def _run(argv: list[str]) -> None:
    train.main(tyro.cli(train.Args, args=argv))


def _losses(out: Path) -> dict[int, float]:
    with (out / train.METRICS_FILE).open() as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


def test_killed_and_resumed_run_continues_with_the_same_losses(dataset, tmp_path):
    base = ["--dataset", str(dataset), "--steps", "8", "--save-every", "4", *COMMON]
    _run([*base, "--output-dir", str(tmp_path / "full")])
    _run([*base, "--output-dir", str(tmp_path / "cut"), "--stop-after", "6"])
    cut = tmp_path / "cut"
    assert sorted(p.name for p in (cut / "checkpoints").iterdir()) == ["000004", "000006"]
    shutil.rmtree(cut / "checkpoints" / "000006")  # killed after logging step 6, before saving it
    _run([*base, "--output-dir", str(cut), "--resume"])
    full, resumed = _losses(tmp_path / "full"), _losses(cut)
    with (cut / train.METRICS_FILE).open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, 9))  # rows after the resumed checkpoint were redone, not duplicated
    for step in range(1, 9):
        assert resumed[step] == full[step], step
    a = SmolVLAPolicy.from_pretrained(tmp_path / "full" / "checkpoints" / "000008" / PRETRAINED)
    b = SmolVLAPolicy.from_pretrained(cut / "checkpoints" / "000008" / PRETRAINED)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_training_lowers_the_loss(dataset, tmp_path):
    out = tmp_path / "run"
    _run(["--dataset", str(dataset), "--output-dir", str(out), "--steps", "200", "--save-every", "200",
          "--lr", "1e-3", "--warmup-steps", "10", "--smolvla-loss", "lerobot04", *COMMON])  # fmt: skip
    losses = _losses(out)
    first = sum(losses[s] for s in range(1, 21)) / 20
    last = sum(losses[s] for s in range(181, 201)) / 20
    assert last < 0.7 * first, (first, last)
    policy = SmolVLAPolicy.from_pretrained(out / "checkpoints" / "000200" / PRETRAINED)
    assert policy.config.chunk_size == 10


def test_resume_without_checkpoint_is_a_clear_error(dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        _run(["--dataset", str(dataset), "--output-dir", str(tmp_path), "--resume", *COMMON])


def test_schedule_matches_lerobot_shape():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    sched = cosine_with_warmup(opt, 1e-4, 2.5e-6, warmup_steps=1000, decay_steps=30000, total_steps=100_000)
    factor = sched.lr_lambdas[0]
    assert sched.get_last_lr()[0] == pytest.approx(1e-4 / 1001)
    assert factor(500) == pytest.approx((1 / 1001 - 1) * 0.5 + 1)
    alpha = 2.5e-6 / 1e-4
    assert factor(1000) == pytest.approx((1 - alpha) * 0.5 * (1 + math.cos(math.pi / 30)) + alpha)
    assert factor(30000) == pytest.approx(alpha) and factor(50000) == pytest.approx(alpha)
    short = cosine_with_warmup(opt, 1e-4, 2.5e-6, warmup_steps=1000, decay_steps=30000, total_steps=300)
    expected = (1 - alpha) * 0.5 * (1 + math.cos(math.pi * 10 / 300)) + alpha  # warmup squeezed to 10
    assert short.lr_lambdas[0](10) == pytest.approx(expected) and short.lr_lambdas[0](300) == pytest.approx(alpha)


def test_fine_tune_from_a_lerobot_checkpoint_uses_the_dataset_stats(dataset, tmp_path):
    ckpt = Path(__file__).parent / "fixtures" / "smolvla_tiny" / "checkpoint"
    out = tmp_path / "ft"
    # --chunk-size is left at its default (50): a loaded policy's own chunk size (10) wins.
    _run(["--dataset", str(dataset), "--output-dir", str(out), "--policy-path", str(ckpt), "--steps", "3",
          "--save-every", "3", "--batch-size", "4", "--wandb", "disabled", "--device", "cpu"])  # fmt: skip
    tuned = SmolVLAPolicy.from_pretrained(out / "checkpoints" / "000003" / PRETRAINED)
    base = SmolVLAPolicy.from_pretrained(ckpt)
    from so101lab.datasets import LeRobotDataset

    mean = torch.as_tensor(LeRobotDataset(dataset).meta.stats["action"]["mean"], dtype=torch.float32)
    torch.testing.assert_close(tuned.processor.stats["action"]["mean"], mean)
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert changed and all("vision_model" not in k for k in changed)  # the frozen vision tower stays put


def test_bf16_autocast_trains_with_finite_losses_near_float32(dataset, tmp_path):
    base = ["--dataset", str(dataset), "--steps", "3", "--save-every", "3", *COMMON]
    _run([*base, "--output-dir", str(tmp_path / "fp32")])
    _run([*base, "--output-dir", str(tmp_path / "bf16"), "--bf16"])
    fp32, bf16 = _losses(tmp_path / "fp32"), _losses(tmp_path / "bf16")
    for step in (1, 2, 3):
        assert math.isfinite(bf16[step])
        assert abs(bf16[step] - fp32[step]) < 0.05 * fp32[step]


def test_fine_tuning_adopts_the_dataset_cameras(tmp_path):
    """smolvla_base names its cameras camera1..3; a fine-tune runs on the dataset's own cameras."""
    root = tmp_path / "top_side"
    cams = (contract.CameraSpec("top", 48, 64), contract.CameraSpec("side", 48, 64))
    write_synthetic(root, [(20, "pick up the red cube"), (20, "push")], cams)
    ckpt = Path(__file__).parent / "fixtures" / "smolvla_tiny" / "checkpoint"  # cameras front, wrist
    out = tmp_path / "ft"
    _run(["--dataset", str(root), "--output-dir", str(out), "--policy-path", str(ckpt), "--steps", "2",
          "--save-every", "2", "--batch-size", "4", "--wandb", "disabled", "--device", "cpu"])  # fmt: skip
    tuned = SmolVLAPolicy.from_pretrained(out / "checkpoints" / "000002" / PRETRAINED)
    assert tuned.config.cameras == ["top", "side"]
    rng = np.random.default_rng(0)
    obs = {"agent_pos": rng.uniform(-20, 20, 6).astype(np.float32),
           "pixels": {c: rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for c in ("top", "side")}}  # fmt: skip
    assert np.isfinite(tuned.select_action(obs, "push")).all()


def test_default_schedule_reaches_the_peak_early_in_a_short_run(dataset):
    """Issue 23: the old defaults put a 1,000-step warmup in a 1,000-step run."""
    args = tyro.cli(train.Args, args=["--dataset", str(dataset), "--steps", "1000"])
    warmup, decay = train.schedule_steps(args)
    assert (warmup, decay) == (50, 1000)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    factor = cosine_with_warmup(opt, 1e-4, 2.5e-6, warmup, decay, args.steps).lr_lambdas[0]
    assert max(range(1000), key=factor) == 50 and factor(50) > 0.99
    long = tyro.cli(train.Args, args=["--dataset", str(dataset), "--steps", "100000"])
    assert train.schedule_steps(long) == (1000, 100000)  # capped at LeRobot's warmup


def test_a_warmup_as_long_as_the_run_is_refused():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    with pytest.raises(ValueError, match="never reach its peak"):
        cosine_with_warmup(opt, 1e-4, 2.5e-6, warmup_steps=1000, decay_steps=1000, total_steps=1000)


def test_missing_accelerate_names_a_package_that_exists(dataset, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "accelerate", None)
    args = tyro.cli(train.Args, args=["--dataset", str(dataset)])
    with pytest.raises(ImportError, match=r"pip install accelerate$"):
        train.main(args)
