"""Regenerate tests/fixtures/lerobot_dataset: a tiny v3.0 dataset written by LeRobot 0.4.4 itself.

Run with the reference LeRobot venv's python (LeRobot is never a dependency of so101lab):

    /root/.cache/lerobot-ref/bin/python scripts/make_fixtures_dataset.py

Besides the dataset it stores, in ``lerobot_dataset_expected.npz``, what LeRobot's own reader
returns for a few items (with delta_timestamps), so so101lab's reader can be compared with it
without LeRobot installed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
ROOT = FIXTURES / "lerobot_dataset"
EXPECTED = FIXTURES / "lerobot_dataset_expected.npz"
FPS = 30
HEIGHT, WIDTH = 48, 64
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
EPISODES = [(18, "pick up the red cube"), (25, "put the cube in the bowl"), (12, "pick up the red cube")]
# Deltas as SmolVLA/ACT use them: an action chunk and one past state / frame.
DELTA_TIMESTAMPS = {
    "action": [i / FPS for i in range(10)],
    "observation.state": [-1 / FPS, 0.0],
    "observation.images.front": [-2 / FPS, 0.0],
}
PROBE_INDICES = [0, 5, 17, 18, 30, 42, 43, 54]


def frame_image(ep: int, i: int, cam: int) -> np.ndarray:
    """A smooth image with a moving bright square: survives lossy coding, differs per frame."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    img = np.stack([x * 3 + 40 * cam, y * 4 + 20 * ep, np.full_like(x, 128)], axis=-1).astype(np.float64)
    cx = 4 + (i * 2) % (WIDTH - 16)
    img[16:32, cx : cx + 12] = 250
    return np.clip(img, 0, 255).astype(np.uint8)


def main() -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    names = [f"{j}.pos" for j in JOINTS]
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": names},
        "action": {"dtype": "float32", "shape": (6,), "names": names},
        "observation.images.front": {
            "dtype": "video",
            "shape": (HEIGHT, WIDTH, 3),
            "names": ["height", "width", "channels"],
        },
        "observation.images.wrist": {
            "dtype": "video",
            "shape": (HEIGHT, WIDTH, 3),
            "names": ["height", "width", "channels"],
        },
    }
    if ROOT.exists():
        shutil.rmtree(ROOT)
    ds = LeRobotDataset.create("so101lab/fixture", FPS, features, root=ROOT, robot_type="so101_follower")
    rng = np.random.default_rng(0)
    for ep, (length, task) in enumerate(EPISODES):
        for i in range(length):
            state = rng.uniform(-90, 90, 6).astype(np.float32)
            ds.add_frame(
                {
                    "observation.state": state,
                    "action": (state + rng.normal(0, 1, 6)).astype(np.float32),
                    "observation.images.front": frame_image(ep, i, 0),
                    "observation.images.wrist": frame_image(ep, i, 1),
                    "task": task,
                }
            )
        ds.save_episode()
    ds.finalize()

    read = LeRobotDataset(
        "so101lab/fixture", root=ROOT, delta_timestamps=DELTA_TIMESTAMPS, video_backend="pyav"
    )
    expected: dict[str, np.ndarray] = {"probe_indices": np.array(PROBE_INDICES)}
    tasks = []
    for idx in PROBE_INDICES:
        item = read[idx]
        tasks.append(item["task"])
        for key, value in item.items():
            if key != "task":
                expected[f"{idx}/{key}"] = value.numpy()
    expected["tasks"] = np.array(tasks)
    expected["delta_timestamps"] = np.array(json.dumps(DELTA_TIMESTAMPS))
    np.savez_compressed(EXPECTED, **expected)
    print(f"wrote {ROOT} and {EXPECTED}", file=sys.stderr)


if __name__ == "__main__":
    main()
