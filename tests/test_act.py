"""ACT: config, checkpoints, the shared image pipeline, the in-memory data, training and control."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import tyro
from safetensors.torch import load_file

from so101lab import contract
from so101lab.datasets import LeRobotDataset
from so101lab.datasets.memory import InMemoryDataset
from so101lab.datasets.synthetic import write_synthetic
from so101lab.experiments import train
from so101lab.policies import ACTConfig, ACTPolicy, TemporalEnsembler, load_policy
from so101lab.policies.smolvla_config import so101_features
from so101lab.policies.train_state import PRETRAINED, RAW_MODEL, TRAINING_STATE, WeightAverage

CAMERAS = (contract.CameraSpec("front", 48, 64), contract.CameraSpec("wrist", 48, 64))
TINY = ["--act.image-size", "32", "32", "--act.dim-model", "32", "--act.n-heads", "2",
        "--act.dim-feedforward", "64", "--act.n-encoder-layers", "1"]  # fmt: skip
COMMON = ["--policy", "act", "--batch-size", "8", "--chunk-size", "6", "--n-action-steps", "3", *TINY,
          "--wandb", "disabled", "--log-every", "1", "--device", "cpu", "--warmup-steps", "0"]  # fmt: skip

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "ds"
    write_synthetic(root, [(30, "pick up the red cube"), (25, "pick up the red cube"), (20, "push")], CAMERAS)
    return root


def _stats(config: ACTConfig) -> dict:
    stats = {k: {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)} for k in config.image_features}
    stats[contract.FEATURE_STATE] = {"mean": torch.zeros(6), "std": torch.full((6,), 30.0)}
    stats[contract.FEATURE_ACTION] = {"mean": torch.zeros(6), "std": torch.full((6,), 30.0)}
    return stats


def _policy(**kw) -> ACTPolicy:
    inputs, outputs = so101_features(("front", "wrist"), (48, 64))
    config = ACTConfig(input_features=inputs, output_features=outputs, image_size=(32, 32), dim_model=32,
                       n_heads=2, dim_feedforward=64, n_encoder_layers=1, chunk_size=6, n_action_steps=3, **kw)
    torch.manual_seed(0)
    return ACTPolicy(config, _stats(config))


def _obs(rng: np.random.Generator, batch: int | None = None) -> dict:
    shape = () if batch is None else (batch,)
    return {
        contract.OBS_STATE: rng.uniform(-50, 50, (*shape, 6)).astype(np.float32),
        contract.OBS_PIXELS: {c: rng.integers(0, 256, (*shape, 48, 64, 3), dtype=np.uint8) for c in ("front", "wrist")},
    }


def test_config_rejects_inconsistent_sizes():
    inputs, outputs = so101_features(("front",), (48, 64))
    with pytest.raises(ValueError, match="n_action_steps"):
        ACTConfig(input_features=inputs, output_features=outputs, chunk_size=5, n_action_steps=6)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        ACTConfig(input_features=inputs, output_features=outputs, dim_model=30, n_heads=4)
    with pytest.raises(ValueError, match="image_size"):
        ACTConfig(input_features=inputs, output_features=outputs, image_size=(50, 64))


def test_missing_stats_are_named():
    inputs, outputs = so101_features(("front",), (48, 64))
    config = ACTConfig(input_features=inputs, output_features=outputs, image_size=(32, 32))
    stats = _stats(config)
    del stats["observation.images.front"]
    with pytest.raises(KeyError, match=r"observation\.images\.front"):
        ACTPolicy(config, stats)


def test_checkpoint_round_trip_predicts_the_same_and_loads_by_type(tmp_path):
    policy = _policy()
    obs = _obs(np.random.default_rng(0), batch=3)
    before = policy.predict_action_chunk(obs)
    assert before.shape == (3, 6, 6)
    policy.save_pretrained(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["type"] == "so101lab_act"
    pre = json.loads((tmp_path / "ckpt" / "policy_preprocessor.json").read_text())
    assert pre["steps"][-1]["registry_name"] == "normalizer_processor"
    again = load_policy(tmp_path / "ckpt")
    assert isinstance(again, ACTPolicy)
    torch.testing.assert_close(again.predict_action_chunk(obs), before, rtol=0, atol=0)
    assert again.stats[contract.FEATURE_STATE]["std"][0] == 30.0


def test_old_act_checkpoints_load_and_lerobot_act_is_refused_by_name(tmp_path):
    policy = _policy()
    ckpt = policy.save_pretrained(tmp_path / "old")
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "type": "act"}))  # written before the rename
    obs = _obs(np.random.default_rng(1), batch=2)
    torch.testing.assert_close(load_policy(ckpt).predict_action_chunk(obs), policy.predict_action_chunk(obs))
    # The config.json keys LeRobot 0.4's ACT writes (abridged to the ones that tell it apart).
    lerobot = {"type": "act", "chunk_size": 100, "n_action_steps": 100, "vision_backbone": "resnet18",
               "pretrained_backbone_weights": "ResNet18_Weights.IMAGENET1K_V1",
               "replace_final_stride_with_dilation": False, "pre_norm": False, "dim_model": 512}  # fmt: skip
    (ckpt / "config.json").write_text(json.dumps(lerobot))
    with pytest.raises(ValueError, match=r"LeRobot ACT checkpoint.*so101lab_act"):
        load_policy(ckpt)


def test_a_training_checkpoint_folder_loads_its_pretrained_model(tmp_path):
    """`eval --policy-path outputs/train/checkpoints/N` (what train writes) loads pretrained_model/."""
    _policy().save_pretrained(tmp_path / "checkpoints" / "000004" / PRETRAINED)
    assert isinstance(load_policy(tmp_path / "checkpoints" / "000004"), ACTPolicy)
    with pytest.raises(FileNotFoundError, match="training checkpoint"):
        load_policy(tmp_path / "checkpoints")


def test_training_and_control_see_the_same_pixels():
    """The dataset cache resizes float CHW frames; control resizes uint8 HWC frames: same result."""
    policy = _policy()
    frames = np.random.default_rng(1).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    from_env = policy.resize_frames(torch.from_numpy(frames))
    from_dataset = policy.resize_frames(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0)
    assert from_env.dtype == torch.uint8 and from_env.shape == (2, 3, 32, 32)
    assert torch.equal(from_env, from_dataset)


def test_select_action_runs_chunks_open_loop_and_keeps_shapes():
    policy = _policy()
    rng = np.random.default_rng(2)
    calls = []
    original = policy.predict_action_chunk
    policy.predict_action_chunk = lambda obs: calls.append(1) or original(obs)
    single = [policy.select_action(_obs(rng)) for _ in range(7)]
    assert all(a.shape == (6,) and a.dtype == np.float32 for a in single)
    assert len(calls) == 3  # steps 0, 3, 6 with n_action_steps=3
    policy.reset()
    assert policy.select_action(_obs(rng, batch=4)).shape == (4, 6)


def test_temporal_ensembler_averages_overlapping_predictions():
    ens = TemporalEnsembler(coeff=0.5)
    first = torch.tensor([[[1.0], [2.0], [3.0]]])
    second = torch.tensor([[[10.0], [20.0], [30.0]]])
    assert torch.allclose(ens.update(first), torch.tensor([[1.0]]))
    # Step 1: first chunk's 2.0 (weight 1, the older) and second chunk's 10.0 (weight exp(-0.5)).
    w = float(np.exp(-0.5))
    assert torch.allclose(ens.update(second), torch.tensor([[(2.0 + 10.0 * w) / (1 + w)]]))


def test_memory_batches_match_the_reader_with_delta_timestamps(dataset):
    policy = _policy()
    data = InMemoryDataset(dataset, policy.config.image_features, policy.resize_frames, progress=False)
    reader = LeRobotDataset(dataset, delta_timestamps={contract.FEATURE_ACTION: [i / 30 for i in range(6)]})
    assert len(data) == len(reader) == 75
    indices = torch.tensor([0, 27, 29, 30, 54, 74])  # episode starts and ends
    batch = data.batch(indices, chunk_size=6)
    for row, i in enumerate(indices.tolist()):
        item = reader[i]
        torch.testing.assert_close(batch[contract.FEATURE_ACTION][row], item[contract.FEATURE_ACTION])
        assert torch.equal(batch["action_is_pad"][row], item["action_is_pad"])
        torch.testing.assert_close(batch[contract.FEATURE_STATE][row], item[contract.FEATURE_STATE])
        for cam, key in enumerate(policy.config.image_features):
            assert torch.equal(batch["images"][row, cam], policy.resize_frames(item[key][None])[0])
    assert batch["action_is_pad"][2].tolist() == [False] + [True] * 5  # last frame of episode 0
    with pytest.raises(KeyError, match=r"observation\.images\.top"):
        InMemoryDataset(dataset, ["observation.images.top"], policy.resize_frames, progress=False)


def _run(argv: list[str]) -> None:
    train.main(tyro.cli(train.Args, args=argv))


def _losses(out: Path) -> dict[int, float]:
    with (out / train.METRICS_FILE).open() as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


@pytest.mark.parametrize("average", [False, True], ids=["raw", "weight-average"])
def test_act_trains_through_the_launcher_and_resumes_exactly(dataset, tmp_path, average):
    base = ["--dataset", str(dataset), "--steps", "6", "--save-every", "3", *COMMON]
    base += ["--ema-decay", "0.9"] if average else []
    _run([*base, "--output-dir", str(tmp_path / "full")])
    _run([*base, "--output-dir", str(tmp_path / "cut"), "--stop-after", "4"])
    shutil.rmtree(tmp_path / "cut" / "checkpoints" / "000004")  # killed before saving step 4
    _run([*base, "--output-dir", str(tmp_path / "cut"), "--resume"])
    full, resumed = _losses(tmp_path / "full"), _losses(tmp_path / "cut")
    assert list(resumed) == list(range(1, 7))
    assert resumed == full
    a = ACTPolicy.from_pretrained(tmp_path / "full" / "checkpoints" / "000006" / PRETRAINED)
    b = ACTPolicy.from_pretrained(tmp_path / "cut" / "checkpoints" / "000006" / PRETRAINED)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    if average:  # the checkpoint's model is the average, not the raw weights training goes on from
        raw = load_file(str(tmp_path / "full" / "checkpoints" / "000006" / TRAINING_STATE / RAW_MODEL))
        assert not torch.equal(raw["model.action_out.weight"], a.state_dict()["model.action_out.weight"])


def test_weight_average_follows_its_ramped_decay_and_swaps_back():
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(model, step=0)  # keep = min(0.5, 1/10): mostly the new weights
    torch.testing.assert_close(average.weights["weight"], 0.1 * start + 0.9 * (start + 1))
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(model, step=20)  # keep = min(0.5, 21/30) = 0.5
    expected = 0.5 * (0.1 * start + 0.9 * (start + 1)) + 0.5 * (start + 2)
    torch.testing.assert_close(average.weights["weight"], expected)
    with average.swapped_into(model):
        torch.testing.assert_close(model.weight.detach(), expected)
    torch.testing.assert_close(model.weight.detach(), start + 2)
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def test_act_fits_its_demonstrations(dataset, tmp_path):
    """Enough steps on 75 frames: the L1 loss falls well below that of predicting the mean."""
    out = tmp_path / "fit"
    _run(["--dataset", str(dataset), "--steps", "150", "--save-every", "150", "--lr", "1e-3",
          "--act.kl-weight", "1", "--act.augment-shift", "0", "--output-dir", str(out), *COMMON])  # fmt: skip
    losses = _losses(out)
    first, last = np.mean([losses[s] for s in range(1, 6)]), np.mean([losses[s] for s in range(140, 151)])
    assert last < 0.5 * first, (first, last)


def test_eval_overrides_switch_act_to_temporal_ensembling():
    from so101lab.experiments import eval as evaluate

    policy = _policy()
    evaluate._override_execution(policy, evaluate.Args(policy_path=Path("."), temporal_ensemble_coeff=0.01))
    calls = []
    original = policy.predict_action_chunk
    policy.predict_action_chunk = lambda obs: calls.append(1) or original(obs)
    rng = np.random.default_rng(3)
    for _ in range(4):
        policy.select_action(_obs(rng))
    assert len(calls) == 4  # a new chunk every step
    with pytest.raises(ValueError, match="n-action-steps"):
        evaluate._override_execution(policy, evaluate.Args(policy_path=Path("."), n_action_steps=7))
