"""Why the background shift hurts: evaluate a robustness run's policies with walls training did show.

    MUJOCO_GL=egl python scripts/diagnose_robustness_walls.py [--run outputs/experiments/pick-cube-act-robustness]
        [--episodes 10] [--threads 2]

The benchmark's `background` condition is one room photo training never shows. Two walls beside it
tell novelty from a pictured wall as such: `wall_photo_seen` (the eight training room photos) and
`wall_texture_seen` (the training texture families), each on the walls of the otherwise nominal
scene. Each policy's last checkpoint, same seeds as the benchmark; results under
`<run>/<policy>/eval_walls/<condition>/` and printed as JSON. Not part of the recipe: it answers
one question about its background numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from so101lab.envs import robustness as scenes
from so101lab.envs.randomization import DomainRandomization
from so101lab.policies.train_state import PRETRAINED


def _training_walls(**walls) -> DomainRandomization:
    """The nominal scene with every wall drawn from `walls`, a part of what the randomised policy trained on."""
    return dataclasses.replace(scenes.nominal_randomization(), wall_texture=1.0, **walls)


def _wall_photo_seen() -> DomainRandomization:
    return _training_walls(texture_families=(), background_images=scenes.training_randomization().background_images)


def _wall_texture_seen() -> DomainRandomization:
    return _training_walls(texture_families=scenes.training_randomization().texture_families)


# At import, so the eval's worker processes (which import this file as their main module) know the env ids.
scenes.CONDITIONS["wall_photo_seen"] = scenes.Condition("a training room photo on the walls", _wall_photo_seen)
scenes.CONDITIONS["wall_texture_seen"] = scenes.Condition("a training texture family on the walls", _wall_texture_seen)
ENV_IDS = scenes.register_conditions("so101lab/PickCube-v0")


def main() -> None:
    from so101lab.experiments import experiment

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("outputs/experiments/pick-cube-act-robustness"))
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    eargs = experiment.Args(recipe="pick-cube-act-robustness", threads=args.threads, output_dir=args.run.parent)
    recipe = experiment.RECIPES["pick-cube-act"]
    results = {}
    for policy in ("plain", "randomized"):
        checkpoints = experiment._finished_checkpoints(args.run / policy / "train")
        if not checkpoints:
            raise SystemExit(f"{args.run / policy} has no checkpoints: run the robustness recipe first")
        for condition in ("wall_photo_seen", "wall_texture_seen"):
            result = experiment._evaluate(eargs, recipe, checkpoints[-1] / PRETRAINED, ENV_IDS[condition],
                                          args.run / policy / "eval_walls" / condition, args.episodes, None)
            results[f"{policy}/{condition}"] = {k: result[k] for k in ("success", "ci95", "episodes")}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
