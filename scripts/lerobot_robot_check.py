"""Drive so101lab's virtual arm as LeRobot's robot `so101lab_virtual` (plugins/lerobot_robot_so101lab); print JSON.

Run with a LeRobot >= 0.6 python where so101lab and the plugin are installed, against a running
`so101lab virtual-arm --task <Task> --socket SOCKET` (tests/test_lerobot_plugin.py does):

    ~/.cache/lerobot-ref-061/bin/python scripts/lerobot_robot_check.py SOCKET CALIBRATION_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(world: str, calibration_dir: str) -> None:
    from lerobot.robots import RobotConfig
    from lerobot.robots.utils import make_robot_from_config
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    cfg = RobotConfig.get_choice_class("so101lab_virtual")(
        world=world, id="check", calibration_dir=Path(calibration_dir), camera_height=48, camera_width=64
    )
    robot = make_robot_from_config(cfg)
    robot.connect()
    task = robot.reset_scene(3)
    obs = robot.get_observation()
    sent = robot.send_action({k: v for k, v in obs.items() if k.endswith(".pos")})
    report = {
        "task": task,
        "observation": {k: list(getattr(v, "shape", ())) for k, v in obs.items()},
        "observation_features": {
            k: list(v) if isinstance(v, tuple) else str(v) for k, v in robot.observation_features.items()
        },
        "sent": sorted(sent),
        "is_success": robot.is_success(),
    }
    robot.disconnect()
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
