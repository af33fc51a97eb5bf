"""The robustness benchmark: held-out conditions differ from the nominal scene and are never sampled in
training, and the recipe runs end to end at toy size (2 demos, 2 steps, 1 short episode per condition)."""

from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest

import so101lab  # noqa: F401  (registers the envs)
from so101lab.envs.robustness import CONDITIONS, HELD_OUT_FAMILY, register_conditions, training_randomization
from so101lab.experiments import experiment, robustness


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SO101LAB_CACHE", str(tmp_path / "cache"))  # room photos go here; workers inherit it


def test_held_out_conditions_are_never_sampled_in_training():
    train = training_randomization()
    assert HELD_OUT_FAMILY not in train.texture_families
    assert train.distractors[1] < 3
    assert train.camera_position * 3**0.5 < 0.02 and np.degrees(train.camera_rotation) < 3
    assert 1 - train.light_intensity > 0.4 and train.light_color < 0.45
    photos = {p.name for p in train.background_images.iterdir()}
    held_out = CONDITIONS["background"].randomization().background_images
    assert not photos & {p.name for p in held_out.iterdir()}


def test_each_condition_changes_the_front_image():
    ids = register_conditions()
    frames = {}
    for name, env_id in ids.items():
        env = gym.make(env_id, visual="primitive", shadows=False, image_size=(96, 128))
        obs, _ = env.reset(seed=0)
        frames[name] = obs["pixels"]["front"]
        again, _ = env.reset(seed=0)
        np.testing.assert_array_equal(frames[name], again["pixels"]["front"])
    for name, frame in frames.items():
        if name != "nominal":
            assert (frame != frames["nominal"]).any(axis=-1).mean() > 0.005, name


@pytest.mark.slow
def test_recipe_runs_end_to_end(tmp_path):
    base = experiment.RECIPES["pick-cube-act"]
    tiny = dataclasses.replace(
        base, train={**base.train, "batch_size": 4, "warmup_steps": 0}, curve_points=1,
        collect={**base.collect, "image_size": (96, 128)}, eval={**base.eval, "max_steps": 5, "batch_size": 1},
    )  # fmt: skip
    args = experiment.Args(recipe="pick-cube-act-robustness", output_dir=tmp_path, demos_per_task=2, steps=2,
                           eval_episodes=1, workers=1)
    results = robustness.main(args, tiny)
    run = tmp_path / "pick-cube-act-robustness"
    assert json.loads((run / "results.json").read_text())["conditions"].keys() == CONDITIONS.keys()
    assert set(results["policies"]) == {"plain", "randomized"} and results["demos_per_policy"] == 2
    for policy in results["policies"].values():
        assert set(policy["success"]) == set(CONDITIONS)
    assert (run / "results.png").stat().st_size > 0 and "| nominal |" in (run / "results.md").read_text()
