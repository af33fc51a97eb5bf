"""`so101lab record --sim <Task>`: record human demonstrations in sim, without a leader arm.

    so101lab record --sim PickCube --root data/teleop --episodes 10           # keyboard
    so101lab record --sim PickCube --root data/teleop --teleop gamepad        # pip install 'so101lab[teleop]'

The keyboard (in the terminal, or in the MuJoCo viewer's window) or a gamepad moves the tool in
Cartesian space; IK turns that into the joint targets that are recorded as the action, at 30 Hz.
Recording controls as in LeRobot (see `so101lab.teleop.recording`). Each episode stores its seed,
env id and success, like `so101lab collect`, so `so101lab replay-sim` re-creates its scene.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from so101lab.datasets import DatasetWriter, robot_features
from so101lab.datasets.resume import check_env_id, first_seed
from so101lab.real.virtual_world import task_env_id
from so101lab.teleop.cartesian import TeleopOperator
from so101lab.teleop.inputs import (
    GamepadEvents,
    GamepadMapper,
    InputSource,
    KeyboardMapper,
    KeyQueue,
    glfw_key_name,
    terminal_keys,
)
from so101lab.teleop.recording import CallableOperator, Phases, Status, record_episodes

if TYPE_CHECKING:
    from so101lab.experiments.record_real import Args


def open_viewer(env: Any, keys: KeyQueue, display: str, stack: contextlib.ExitStack) -> Any:
    """The live MuJoCo viewer (its keys feed ``keys``), or None when not asked for or no display."""
    if display == "none" or (display == "auto" and not os.environ.get("DISPLAY")):
        return None
    import mujoco.viewer

    def on_key(code: int) -> None:
        name = glfw_key_name(code)
        if name is not None:
            keys.push(name)

    viewer = mujoco.viewer.launch_passive(env.model, env.data, key_callback=on_key)
    stack.callback(viewer.close)
    return viewer


def run(args: Args, source: InputSource | None = None) -> Path:
    """Record; ``source`` replaces the devices (tests script key presses or gamepad events with it)."""
    env_id = task_env_id(args.sim)
    teleop = args.teleop or "keyboard"
    if teleop == "leader":
        raise SystemExit("--sim records with --teleop keyboard, gamepad or expert (a leader arm drives "
                         "a sim twin with `so101lab teleoperate --sim-twin`)")
    phases = Phases(args.episodes, args.episode_seconds, args.warmup_seconds, args.reset_seconds or 0.0)
    kwargs = {"cameras": args.cameras or None, "image_size": args.image_size, "visual": args.visual}
    with contextlib.ExitStack() as stack:
        env = gym.make(env_id, obs_mode="pixels_agent_pos", **{k: v for k, v in kwargs.items() if v is not None})
        stack.callback(env.close)
        sim = env.unwrapped
        writer = stack.enter_context(DatasetWriter(args.root, robot_features(sim.cameras)))
        check_env_id(writer.episodes, env_id, args.root, False)
        first = first_seed(writer.episodes, args.seed, args.episodes, args.root, env_id, args.allow_duplicate_seeds)
        keys = KeyQueue()
        if source is None:
            stack.enter_context(terminal_keys(keys))
        viewer = open_viewer(sim, keys, args.display, stack) if source is None else None
        if teleop == "expert":
            from so101lab.envs import make_expert

            expert = make_expert(env)
            operator: Any = CallableOperator(expert.act, expert.reset, source or keys)
        elif teleop == "gamepad":
            operator = TeleopOperator(sim, source or GamepadEvents(), GamepadMapper())
        else:
            operator = TeleopOperator(sim, source or keys, KeyboardMapper())
        if teleop != "gamepad" and source is None:
            print("keys: w/s a/d r/f move the tool, q/e yaw, i/k pitch, space gripper", flush=True)
        record_episodes(env, operator, writer, phases, first, status=Status(viewer=viewer),
                        realtime=source is None, end_on_success=args.end_on_success,
                        extra=lambda seed, info: {"env_id": env_id, "success": bool(info.get("is_success"))},
                        on_step=viewer.sync if viewer is not None else None)
    return args.root
