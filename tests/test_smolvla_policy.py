"""SmolVLA policy behaviour: env observations in, joint targets out; queue; presets; processor errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from so101lab.policies import ActionQueue, SmolVLAPolicy
from so101lab.policies.smolvla_backbone import VLMWithExpert, expert_intermediate_size, patch_position_ids
from so101lab.policies.smolvla_config import SmolVLAConfig, preset_config
from so101lab.policies.smolvla_processor import resize_with_pad
from so101lab.policies.vlm_presets import PRESETS, image_seq_len, write_vlm_dir

FIXTURE = Path(__file__).parent / "fixtures" / "smolvla_tiny"


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def policy() -> SmolVLAPolicy:
    return SmolVLAPolicy.from_pretrained(FIXTURE / "checkpoint")


def _obs(rng: np.random.Generator, batch: int | None = None) -> dict:
    lead = () if batch is None else (batch,)
    return {
        "agent_pos": rng.uniform(-30, 30, (*lead, 6)).astype(np.float32),
        "pixels": {cam: rng.integers(0, 256, (*lead, 48, 64, 3), dtype=np.uint8) for cam in ("front", "wrist")},
    }


def test_select_action_runs_the_chunk_then_replans(policy):
    rng = np.random.default_rng(0)
    obs = _obs(rng)
    noise = torch.randn(1, policy.config.chunk_size, policy.config.max_action_dim)
    policy.reset()
    first = [
        policy.select_action(obs, "pick up the red cube", noise=noise) for _ in range(policy.config.n_action_steps)
    ]
    assert first[0].shape == (6,) and first[0].dtype == np.float32
    batch = policy.processor.observation_to_batch(obs, "pick up the red cube")
    chunk = policy.predict_action_chunk(batch, noise=noise)[0].numpy()
    np.testing.assert_allclose(np.stack(first), chunk[: policy.config.n_action_steps], atol=1e-5)
    assert len(policy.queue) == 0
    other = _obs(rng)
    replanned = policy.select_action(other, "pick up the red cube", noise=noise)
    assert np.abs(replanned - first[0]).max() > 1e-4  # a new observation, a new chunk


def test_select_action_batched_matches_single(policy):
    rng = np.random.default_rng(1)
    obs = _obs(rng, batch=2)
    noise = torch.randn(2, policy.config.chunk_size, policy.config.max_action_dim)
    policy.reset()
    both = policy.select_action(obs, ["pick up the red cube", "push the cube"], noise=noise)
    assert both.shape == (2, 6)
    single = {"agent_pos": obs["agent_pos"][1], "pixels": {k: v[1] for k, v in obs["pixels"].items()}}
    policy.reset()
    one = policy.select_action(single, "push the cube", noise=noise[1:])
    np.testing.assert_allclose(both[1], one, atol=1e-4)


def test_language_changes_the_actions(policy):
    rng = np.random.default_rng(2)
    batch = policy.processor.observation_to_batch(_obs(rng), "pick up the red cube")
    noise = torch.randn(1, policy.config.chunk_size, policy.config.max_action_dim)
    a = policy.predict_action_chunk(batch, noise=noise)
    b = policy.predict_action_chunk({**batch, "task": ["stack the blue cube on the green cube"]}, noise=noise)
    assert (a - b).abs().max() > 1e-4


def test_observation_errors_name_the_problem(policy):
    rng = np.random.default_rng(3)
    obs = _obs(rng)
    del obs["pixels"]["wrist"]
    with pytest.raises(KeyError, match="wrist"):
        policy.select_action(obs, "pick")
    with pytest.raises(KeyError, match="agent_pos"):
        policy.select_action({"pixels": _obs(rng)["pixels"]}, "pick")
    with pytest.raises(ValueError, match="2 tasks for 1 observations"):
        policy.processor.observation_to_batch(_obs(rng), ["a", "b"])
    batch = policy.processor.observation_to_batch(_obs(rng), "pick")
    with pytest.raises(ValueError, match="noise must have shape"):
        policy.predict_action_chunk(batch, noise=torch.zeros(1, 3, 32))


def test_action_queue_pops_n_steps_per_chunk():
    calls = []

    def predict():
        calls.append(1)
        return torch.arange(2 * 5 * 1, dtype=torch.float32).reshape(2, 5, 1)

    queue = ActionQueue(3)
    out = [queue.pop(predict) for _ in range(4)]
    assert len(calls) == 2
    assert [o[0, 0].item() for o in out] == [0, 1, 2, 0]
    assert out[0].shape == (2, 1)
    queue.reset()
    assert len(queue) == 0
    with pytest.raises(ValueError, match="n_action_steps"):
        ActionQueue(6).pop(predict)


def test_resize_with_pad_keeps_aspect_and_pads_left_top():
    img = torch.ones(1, 3, 48, 64)
    out = resize_with_pad(img, 64, 64)
    assert out.shape == (1, 3, 64, 64)
    assert out[:, :, :16].abs().max() == 0 and out[:, :, 16:].min() == 1
    tall = resize_with_pad(torch.ones(1, 1, 64, 32), 64, 64)
    assert tall[..., :32].abs().max() == 0 and tall[..., 32:].min() == 1


def test_patch_positions_follow_transformers_4():
    # 4 patches per side: coordinates i/4*(1-1e-6) fall just below bucket edges -> 0, 0, 1, 2.
    ids = patch_position_ids(4, 4, 4, torch.device("cpu")).reshape(4, 4)
    assert ids[0].tolist() == [0, 0, 1, 2] and ids[:, 0].tolist() == [0, 0, 4, 8]


def test_config_roundtrip_keeps_unknown_lerobot_keys(tmp_path):
    cfg = SmolVLAConfig.load(FIXTURE / "checkpoint")
    assert cfg.extra["compile_mode"] == "max-autotune" and cfg.cameras == ["front", "wrist"]
    cfg.save(tmp_path)
    assert SmolVLAConfig.load(tmp_path).to_dict() == cfg.to_dict()
    with pytest.raises(ValueError, match="n_action_steps"):
        SmolVLAConfig(chunk_size=10, n_action_steps=20)
    with pytest.raises(ValueError, match="policy type 'act'"):
        SmolVLAConfig.from_dict({"type": "act"})


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_presets_build_and_predict(preset, tmp_path):
    vlm = write_vlm_dir(tmp_path / "vlm", preset)
    config = preset_config(preset, vlm, ("front",), (48, 64), chunk_size=4, n_action_steps=4, num_steps=2)
    stats = {k: {"mean": torch.zeros(6), "std": torch.ones(6)} for k in ("observation.state", "action")}
    policy = SmolVLAPolicy(config, vlm, stats)
    assert len(policy.model.vlm_with_expert.vlm.model.text_model.layers) == PRESETS[preset]["num_vlm_layers"]
    rng = np.random.default_rng(0)
    obs = {
        "agent_pos": np.zeros(6, np.float32),
        "pixels": {"front": rng.integers(0, 255, (48, 64, 3), np.uint8)},
    }
    action = policy.select_action(obs, "pick up the cube")
    assert action.shape == (6,) and np.isfinite(action).all()
    tokens = policy.model.vlm_with_expert.embed_image(torch.zeros(1, 3, *config.resize_imgs_with_padding))
    assert tokens.shape[1] == image_seq_len(preset)


def test_full_preset_matches_the_450m_layout():
    from transformers import AutoConfig

    import so101lab.policies.vlm_presets as vp

    cfg = AutoConfig.for_model(**{k: v for k, v in vp.vlm_config_dict("full").items() if k != "model_type"}
                               | {"model_type": "smolvlm"})  # fmt: skip
    with torch.device("meta"):
        model = VLMWithExpert(cfg, 16, -1, 2, 0.75)
    expert = model.lm_expert.layers[1].self_attn
    assert model.expert_hidden_size == 720 and expert_intermediate_size(720) == 2048
    assert expert.k_proj.in_features == 5 * 64  # cross-attention layer reads the VLM's kv width
    assert model.lm_expert.layers[0].self_attn.k_proj.in_features == 720
    n = sum(p.numel() for p in model.parameters())
    assert 400e6 < n < 500e6, n


def test_missing_normalisation_stats_fail_at_construction(tmp_path):
    vlm = write_vlm_dir(tmp_path / "vlm", "tiny")
    config = preset_config("tiny", vlm, ("front",), (48, 64), chunk_size=4, n_action_steps=4)
    with pytest.raises(KeyError, match="mean and std for 'action'"):
        SmolVLAPolicy(config, vlm, {"observation.state": {"mean": torch.zeros(6), "std": torch.ones(6)}})


def test_load_vlm_weights_starts_a_fresh_policy_from_the_vlm_and_a_checkpoint_from_itself(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoConfig
    from transformers.models.smolvlm import SmolVLMForConditionalGeneration

    vlm = write_vlm_dir(tmp_path / "vlm", "tiny")
    config = preset_config("tiny", vlm, ("front",), (48, 64), chunk_size=4, n_action_steps=4, load_vlm_weights=True)
    stats = {k: {"mean": torch.zeros(6), "std": torch.ones(6)} for k in ("observation.state", "action")}
    with pytest.raises(FileNotFoundError, match=r"no \*\.safetensors weights"):
        SmolVLAPolicy(config, vlm, stats)
    torch.manual_seed(1)
    SmolVLMForConditionalGeneration(AutoConfig.from_pretrained(vlm)).save_pretrained(vlm)
    pretrained = load_file(str(vlm / "model.safetensors"))
    torch.manual_seed(2)
    policy = SmolVLAPolicy(config, vlm, stats)
    loaded = policy.model.vlm_with_expert.vlm.state_dict()
    assert all(torch.equal(loaded[k], pretrained[k]) for k in loaded)
    ckpt = policy.save_pretrained(tmp_path / "ckpt")
    (vlm / "model.safetensors").unlink()  # a checkpoint holds its own VLM weights
    again = SmolVLAPolicy.from_pretrained(ckpt).model.vlm_with_expert.vlm.state_dict()
    assert all(torch.equal(again[k], loaded[k]) for k in loaded)


def test_use_cache_false_is_refused_not_ignored():
    with pytest.raises(NotImplementedError, match="use_cache=False"):
        SmolVLAConfig(use_cache=False)
