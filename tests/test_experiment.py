"""`so101lab experiment`: the whole closed loop at toy scale (real sim, real dataset, real training)."""

from __future__ import annotations

import json

import pytest

from so101lab.errors import UsageError
from so101lab.experiments import experiment

TINY_ACT = dict(image_size=(32, 32), dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _recipe(tasks: tuple[str, ...]) -> experiment.Recipe:
    from so101lab.experiments.train import ACTOptions

    return experiment.Recipe(
        tasks=tasks,
        train=dict(policy="act", steps=4, batch_size=8, lr=1e-3, log_every=1, warmup_steps=0, decay_steps=4,
                   chunk_size=10, n_action_steps=10, act=ACTOptions(**TINY_ACT)),
        curve_points=2,
        # Small frames: the policy sees 32x32, and eval renders at the dataset's size.
        collect=dict(image_size=(48, 64)),
    )  # fmt: skip


def _args(tmp_path, recipe: str) -> experiment.Args:
    return experiment.Args(recipe=recipe, output_dir=tmp_path, demos_per_task=2, eval_episodes=2, curve_episodes=1,
                           workers=1)  # fmt: skip


def test_experiment_runs_the_closed_loop_and_resumes_without_redoing_work(tmp_path, monkeypatch):
    monkeypatch.setitem(experiment.RECIPES, "pick-cube-act", _recipe(("so101lab/PickCube-v0",)))
    results = experiment.main(_args(tmp_path, "pick-cube-act"))
    run = tmp_path / "pick-cube-act"
    assert json.loads((run / "results.json").read_text()) == results
    assert (run / "results.png").stat().st_size > 10_000
    assert results["dataset"]["episodes"] == 2 and results["dataset"]["frames"] > 40
    curve = results["success_vs_steps"]["so101lab/PickCube-v0"]
    assert [p["step"] for p in curve] == [2, 4]
    assert [p["episodes"] for p in curve] == [1, 2]  # the last checkpoint gets the full evaluation
    for point in curve:
        assert point["ci95"][0] <= point["success"] <= point["ci95"][1]
    assert [row["step"] for row in results["loss"]] == [1, 2, 3, 4]
    assert set(results["wall_s"]) == {"collect_s", "train_s", "eval_s"}

    final = run / "train" / "checkpoints" / "000004" / "pretrained_model" / "model.safetensors"
    stamp = final.stat().st_mtime_ns
    again = experiment.main(_args(tmp_path, "pick-cube-act"))  # everything on disk: nothing is redone
    assert final.stat().st_mtime_ns == stamp
    assert again["success_vs_steps"] == results["success_vs_steps"]
    assert again["dataset"]["episodes"] == 2

    # A run folder is tied to its dataset: another one (say, another --demos-per-task) is refused, not
    # evaluated with this run's checkpoints.
    other = experiment._train_args(_args(tmp_path, "pick-cube-act"), experiment.RECIPES["pick-cube-act"],
                                   tmp_path / "data" / "PickCube_3", run)  # fmt: skip
    with pytest.raises(UsageError, match=r"trained on .*PickCube_2"):
        experiment.train_unless_done(other)


def test_multitask_experiment_swaps_instructions_between_tasks(tmp_path, monkeypatch):
    tasks = ("so101lab/PickCube-v0", "so101lab/PickPlace-v0")
    monkeypatch.setattr(experiment, "ALL_TASKS", tasks)
    monkeypatch.setitem(experiment.RECIPES, "multitask-smolvla", _recipe(tasks))
    results = experiment.main(_args(tmp_path, "multitask-smolvla"))
    assert results["dataset"]["episodes"] == 4
    assert results["dataset"]["episodes_per_task"] == {t: 2 for t in tasks}
    swapped = results["swapped_instructions"]
    assert swapped["so101lab/PickCube-v0"]["instruction_of"] == "so101lab/PickPlace-v0"
    assert swapped["so101lab/PickPlace-v0"]["instruction_of"] == "so101lab/PickCube-v0"
    info = json.loads((tmp_path / "multitask-smolvla" / "eval" / "000004_swapped" / "PickCube" /
                       "eval_info.json").read_text())  # fmt: skip
    told = {e["instruction"] for e in info["per_episode"]}
    assert told == {swapped["so101lab/PickCube-v0"]["instruction"]}
    assert all(e["task"].startswith("pick up") and e["instruction"] != e["task"] for e in info["per_episode"])
