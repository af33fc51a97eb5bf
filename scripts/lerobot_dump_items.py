"""Dump what LeRobot 0.4.4's reader returns for some items of a local dataset (parity checks).

Run with the reference LeRobot venv's python, never the project's:

    /root/.cache/lerobot-ref/bin/python scripts/lerobot_dump_items.py ROOT OUT.npz \
        --delta-timestamps '{"action": [0, 0.0333]}' --indices 0 5 9

OUT.npz holds "<index>/<key>" arrays, "tasks" (per probed index), "len", "num_episodes",
"tasks_table" (task strings by task_index) and "stats" (stats.json as LeRobot loaded it, JSON).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def dump_items(ds, indices: list[int]) -> dict[str, np.ndarray]:
    """LeRobot's items as "<index>/<key>" arrays, plus "tasks" (the task string of each index)."""
    out: dict[str, np.ndarray] = {}
    tasks = []
    for idx in indices:
        item = ds[idx]
        tasks.append(item["task"])
        for key, value in item.items():
            if key != "task":
                out[f"{idx}/{key}"] = value.numpy()
    out["tasks"] = np.array(tasks)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("out")
    parser.add_argument("--delta-timestamps", default=None)
    parser.add_argument("--indices", type=int, nargs="*", default=None)
    args = parser.parse_args()

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    delta = json.loads(args.delta_timestamps) if args.delta_timestamps else None
    ds = LeRobotDataset("local/check", root=args.root, delta_timestamps=delta, video_backend="pyav")
    indices = args.indices if args.indices is not None else list(range(len(ds)))
    out: dict[str, np.ndarray] = {
        "indices": np.array(indices),
        "len": np.array(len(ds)),
        "num_episodes": np.array(ds.num_episodes),
        "tasks_table": np.array(
            sorted(ds.meta.tasks.index, key=lambda t: int(ds.meta.tasks.loc[t].task_index))
        ),
        "stats": np.array(
            json.dumps(
                {k: {s: np.asarray(v).tolist() for s, v in st.items()} for k, st in ds.meta.stats.items()}
            )
        ),
    }
    out.update(dump_items(ds, indices))
    np.savez_compressed(args.out, **out)


if __name__ == "__main__":
    main()
