"""Drive so101lab's LeRobot env plugin the way `lerobot-eval` does, with so101lab's scripted expert; print JSON.

Run with a LeRobot >= 0.6 python where so101lab and plugins/lerobot_env_so101lab are installed (the
project's tests/test_lerobot_plugin.py does):

    ~/.cache/lerobot-ref-061/bin/python scripts/lerobot_env_check.py --task PickCube-v0

It checks what a policy checkpoint cannot show in a few training steps: LeRobot discovers the plugin,
builds the task's vector env from `--env.*` fields, the observation reaches the policy under
LeRobot's keys and shapes, the instruction is the task string, and an episode the expert solves is
counted a success by the same `info` handling as `lerobot-eval`'s rollout.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="PickCube-v0")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from lerobot.envs.configs import EnvConfig
    from lerobot.envs.factory import make_env
    from lerobot.envs.utils import env_to_policy_features, preprocess_observation
    from lerobot.utils.import_utils import register_third_party_plugins

    from so101lab.envs import make_expert

    register_third_party_plugins()  # what every lerobot-* command does first
    cfg = EnvConfig.get_choice_class("so101lab")(
        task=args.task, observation_height=48, observation_width=64, visual="primitive", shadows=False
    )
    vec = make_env(cfg, n_envs=1, use_async_envs=False)["so101lab"][0]
    obs, info = vec.reset(seed=[args.seed])
    report: dict = {
        "policy_features": {k: [f.type.name, list(f.shape)] for k, f in env_to_policy_features(cfg).items()},
        "observation": {k: list(v.shape) for k, v in preprocess_observation(obs).items()},
        "task": list(vec.call("task")),
        "max_episode_steps": vec.call("_max_episode_steps")[0],
    }
    sub = vec.envs[0]
    expert = make_expert(sub)
    success, steps = False, 0
    for steps in range(1, report["max_episode_steps"] + 1):  # noqa: B007
        action = expert.act({k: v[0] if not isinstance(v, dict) else {c: x[0] for c, x in v.items()}
                             for k, v in obs.items()})  # fmt: skip
        obs, _, terminated, truncated, info = vec.step(np.asarray(action, dtype=np.float32)[None])
        # lerobot-eval's rollout: success from final_info (vector autoreset) or info["is_success"].
        final = info.get("final_info", info)
        success = bool(np.asarray(final.get("is_success", [False]))[0])
        if terminated[0] or truncated[0]:
            break
    report.update(expert_success=success, expert_steps=steps, render_shape=list(sub.render().shape))
    vec.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
