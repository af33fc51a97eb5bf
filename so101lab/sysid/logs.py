"""Servo logs: what the fitter compares the simulation with.

Two on-disk formats, both `.npz`, told apart by their keys:

- **bench run** (the STS3215 pendulum data set, see docs/sysid.md): one servo turning a
  pendulum. Arrays `t` (s), `goal`, `pos` (rad), `torque_enable` (bool); scalars `kp`
  (firmware P), `trajectory`, and the moving link `link_com` (m, link frame, axis = z),
  `link_mass` (kg), `link_fullinertia` (Ixx Iyy Izz Ixy Ixz Iyz at the COM, kg m^2).
- **arm log** (an SO-101 recorded through the stack, written by `save_arm_log`): arrays `t` (s,
  [T]), `goal` and `present` (rad, model joint angles, [T, J]), optional `torque_enable` (bool,
  [T, J], default all on), `p_gain` ([J], default 16), `joint_names` ([J] str, default the
  contract's six) and `trajectory` (str, a label for grouping). Row k: `present` read at t[k],
  then `goal` sent at t[k].

A LeRobot dataset recorded on the arm also serves as arm logs (`load_dataset_logs`): its
`action` (goal) and `observation.state` (present), converted from LeRobot units to radians.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from so101lab.contract import JOINT_NAMES

BENCH_KEYS = ("t", "goal", "pos", "torque_enable", "kp", "trajectory", "link_com", "link_mass",
              "link_fullinertia")
ARM_KEYS = ("t", "goal", "present")


@dataclass(frozen=True)
class BenchLink:
    """The rigid body a bench servo turns about its z axis (the pendulum with its masses)."""

    com: np.ndarray  # (3,) m, in the link frame
    mass: float  # kg
    fullinertia: np.ndarray  # (6,) Ixx Iyy Izz Ixy Ixz Iyz about the COM, kg m^2


@dataclass
class ServoLog:
    """One recorded run: goals sent and positions measured, per joint, on a common time grid."""

    name: str
    trajectory: str  # label for per-type statistics (bench: brutal, sin_sin, ...)
    t: np.ndarray  # (T,) s, starting at 0
    goal: np.ndarray  # (T, J) rad
    pos: np.ndarray  # (T, J) rad
    torque_enable: np.ndarray  # (T, J) bool
    p_gain: np.ndarray  # (J,) firmware P of each joint
    joint_names: tuple[str, ...]
    bench: BenchLink | None = None  # set for bench runs; arm logs are simulated on the SO-101 model
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.t = np.asarray(self.t, dtype=np.float64)
        n, j = len(self.t), len(self.joint_names)
        self.goal = _as_2d(self.goal, n, j, f"{self.name}: goal")
        self.pos = _as_2d(self.pos, n, j, f"{self.name}: pos")
        torque_enable = np.asarray(self.torque_enable, dtype=bool)
        if torque_enable.size != n * j:
            raise ValueError(f"{self.name}: torque_enable must have shape ({n}, {j}), "
                             f"got {torque_enable.shape}")
        self.torque_enable = torque_enable.reshape(n, j)
        self.p_gain = np.broadcast_to(np.asarray(self.p_gain, dtype=np.float64), (j,)).copy()
        if n < 2 or not np.all(np.diff(self.t) > 0):
            raise ValueError(f"{self.name}: t must hold at least 2 strictly increasing times")
        if not (np.all(np.isfinite(self.goal)) and np.all(np.isfinite(self.pos))):
            raise ValueError(f"{self.name}: goal and pos must be finite")
        if np.any(self.p_gain <= 0):
            raise ValueError(f"{self.name}: p_gain must be > 0, got {self.p_gain}")
        self.t = self.t - self.t[0]

    @property
    def kind(self) -> str:
        return "bench" if self.bench is not None else "arm"

    @property
    def duration(self) -> float:
        return float(self.t[-1])


def _as_2d(array: np.ndarray, n: int, j: int, what: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.shape == (n,) and j == 1:
        array = array[:, None]
    if array.shape != (n, j):
        raise ValueError(f"{what} must have shape ({n}, {j}), got {array.shape}")
    return array


def load_log(path: str | Path) -> ServoLog:
    """Read one `.npz` log of either format (see the module docstring)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    if all(k in data for k in BENCH_KEYS):
        return ServoLog(
            name=path.stem, trajectory=str(data["trajectory"]), t=data["t"], goal=data["goal"],
            pos=data["pos"], torque_enable=data["torque_enable"], p_gain=float(data["kp"]),
            joint_names=("servo",),
            bench=BenchLink(np.asarray(data["link_com"], float), float(data["link_mass"]),
                            np.asarray(data["link_fullinertia"], float)),
            meta={k: data[k].item() for k in ("mass", "length", "vin") if k in data},
        )
    if all(k in data for k in ARM_KEYS):
        names = tuple(str(n) for n in data["joint_names"]) if "joint_names" in data else JOINT_NAMES
        n, j = len(data["t"]), len(names)
        return ServoLog(
            name=path.stem, trajectory=str(data.get("trajectory", "arm")), t=data["t"], goal=data["goal"],
            pos=data["present"], torque_enable=data.get("torque_enable", np.ones((n, j), bool)),
            p_gain=data.get("p_gain", np.full(j, 16.0)), joint_names=names,
        )
    missing_bench = [k for k in BENCH_KEYS if k not in data]
    missing_arm = [k for k in ARM_KEYS if k not in data]
    raise ValueError(f"{path}: neither a bench run (missing {missing_bench}) "
                     f"nor an arm log (missing {missing_arm})")


def save_arm_log(path: str | Path, t: np.ndarray, goal: np.ndarray, present: np.ndarray,
                 torque_enable: np.ndarray | None = None, p_gain: np.ndarray | None = None,
                 joint_names: tuple[str, ...] = JOINT_NAMES, trajectory: str = "arm") -> Path:
    """Write an arm log (angles in rad, model joint convention); returns the path written."""
    n, j = len(t), len(joint_names)
    log = ServoLog(Path(path).stem, trajectory, t, goal, present,
                   np.ones((n, j), bool) if torque_enable is None else torque_enable,
                   np.full(j, 16.0) if p_gain is None else p_gain, tuple(joint_names))
    path = Path(path)
    np.savez(path, t=np.asarray(t, float), goal=log.goal, present=log.pos, torque_enable=log.torque_enable,
             p_gain=log.p_gain, joint_names=np.array(joint_names), trajectory=np.array(trajectory))
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def load_dataset_logs(root: str | Path, p_gain: float = 16.0) -> list[ServoLog]:
    """One arm log per episode of a LeRobot dataset recorded on the arm (`so101lab record`):
    `action` is the goal sent and `observation.state` the position read just before it."""
    from so101lab.contract import FEATURE_ACTION, FEATURE_STATE, lerobot_to_radians
    from so101lab.datasets.reader import LeRobotDataset  # torch-backed; only needed here

    dataset = LeRobotDataset(root)
    missing = [k for k in (FEATURE_ACTION, FEATURE_STATE, "timestamp") if k not in dataset.features]
    if missing:
        raise ValueError(f"{root}: LeRobot dataset without {missing}; cannot read servo logs from it")
    logs = []
    for episode in dataset.episodes:
        t = dataset.column("timestamp", episode).reshape(-1)
        logs.append(ServoLog(
            name=f"episode_{episode:06d}", trajectory="dataset", t=t,
            goal=lerobot_to_radians(dataset.column(FEATURE_ACTION, episode)),
            pos=lerobot_to_radians(dataset.column(FEATURE_STATE, episode)),
            torque_enable=np.ones((len(t), len(JOINT_NAMES)), bool), p_gain=p_gain, joint_names=JOINT_NAMES,
        ))
    return logs


def load_logs(data: str | Path) -> list[ServoLog]:
    """Every `.npz` log in a directory (sorted by name), the one file given, or every episode of a
    LeRobot dataset directory (one with meta/info.json)."""
    data = Path(data)
    if data.is_file():
        return [load_log(data)]
    if (data / "meta" / "info.json").is_file():
        return load_dataset_logs(data)
    if not data.is_dir():
        raise FileNotFoundError(f"servo logs: {data} is neither a directory nor an .npz file")
    files = sorted(data.glob("*.npz"))
    if not files:
        raise FileNotFoundError(f"servo logs: no .npz files in {data}")
    return [load_log(f) for f in files]
