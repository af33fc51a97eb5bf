"""Regenerate tests/fixtures/lerobot_dataset (LeRobot 0.4.4) or lerobot061_dataset (LeRobot 0.6.1): tiny
v3.0 datasets written by that LeRobot itself.

Run with a reference LeRobot venv's python (LeRobot is never a dependency of so101lab):

    /root/.cache/lerobot-ref/bin/python scripts/make_fixtures_dataset.py       # lerobot_dataset*
    /root/.cache/lerobot-ref-061/bin/python scripts/make_fixtures_dataset.py   # lerobot061_dataset*

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
from lerobot_dump_items import dump_items  # sibling script (run from scripts/ with LeRobot's python)

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
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


def write(root: Path, expected_path: Path, episodes, dtype: str, size: tuple[int, int], cams, probes) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    names = [f"{j}.pos" for j in JOINTS]
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": names},
        "action": {"dtype": "float32", "shape": (6,), "names": names},
    }
    for cam in cams:
        features[f"observation.images.{cam}"] = {
            "dtype": dtype, "shape": (*size, 3), "names": ["height", "width", "channels"],
        }  # fmt: skip
    if root.exists():
        shutil.rmtree(root)
    ds = LeRobotDataset.create(
        "so101lab/fixture", FPS, features, root=root, robot_type="so101_follower", use_videos=dtype == "video"
    )
    rng = np.random.default_rng(0)
    for ep, (length, task) in enumerate(episodes):
        for i in range(length):
            state = rng.uniform(-90, 90, 6).astype(np.float32)
            frame = {"observation.state": state, "action": (state + rng.normal(0, 1, 6)).astype(np.float32)}
            for c, cam in enumerate(cams):
                frame[f"observation.images.{cam}"] = frame_image(ep, i, c)[: size[0], : size[1]]
            ds.add_frame({**frame, "task": task})
        ds.save_episode()
    ds.finalize()

    delta = {k: v for k, v in DELTA_TIMESTAMPS.items() if k in features}
    read = LeRobotDataset("so101lab/fixture", root=root, delta_timestamps=delta, video_backend="pyav")
    expected: dict[str, np.ndarray] = {"probe_indices": np.array(probes), **dump_items(read, probes)}
    expected["delta_timestamps"] = np.array(json.dumps(delta))
    np.savez_compressed(expected_path, **expected)
    print(f"wrote {root} and {expected_path}", file=sys.stderr)


def main() -> None:
    from importlib.metadata import version

    prefix = "lerobot" if version("lerobot").startswith("0.4") else "lerobot061"
    root, expected = FIXTURES / f"{prefix}_dataset", FIXTURES / f"{prefix}_dataset_expected.npz"
    write(root, expected, EPISODES, "video", (HEIGHT, WIDTH), ("front", "wrist"), PROBE_INDICES)
    # A second, tiny one with camera frames stored as images (PNG in parquet) instead of videos.
    root, expected = FIXTURES / f"{prefix}_dataset_images", FIXTURES / f"{prefix}_dataset_images_expected.npz"
    write(root, expected, [(4, "pick up the red cube"), (3, "stack")], "image", (24, 32), ("front",), [0, 3, 4, 6])


if __name__ == "__main__":
    main()
