"""Inverse kinematics of the SO-101 tool centre point, by damped least squares on MuJoCo Jacobians.

Works on a private MjData so solving never disturbs the simulation it plans for.
"""

from __future__ import annotations

import mujoco
import numpy as np

from so101lab.contract import ARM_JOINTS


def top_down_rotation(yaw: float) -> np.ndarray:
    """Gripper frame pointing the fingers straight down, jaws opening along world yaw `yaw`."""
    x = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    z = np.array([0.0, 0.0, 1.0])  # the fingers extend along the gripper's -z
    return np.column_stack([x, np.cross(z, x), z])


class TcpIK:
    """Solves arm joint angles (rad) that put the `tcp` site at a position and orientation."""

    def __init__(self, model: mujoco.MjModel, site: str = "tcp", rotation_weight: float = 0.2,
                 damping: float = 1e-3):
        self.model = model
        self.data = mujoco.MjData(model)
        self.site = model.site(site).id
        joints = [model.joint(n).id for n in ARM_JOINTS]
        self.qpos_adr = model.jnt_qposadr[joints]
        self.dof_adr = model.jnt_dofadr[joints]
        self.lower, self.upper = model.jnt_range[joints].T
        self.elbow_up = np.deg2rad([0.0, -60.0, 60.0, 60.0, 0.0])
        self.rotation_weight = rotation_weight
        self.damping = damping
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def solve(self, q_init: np.ndarray, position: np.ndarray, rotation: np.ndarray,
              iterations: int = 60, tolerance: float = 1e-4) -> tuple[np.ndarray, float]:
        """Arm angles (5, rad) near a warm start, and the remaining position error (m).

        If the warm start leads into a poor local minimum, the elbow-up rest configuration is
        tried as a second start and the better solution kept.
        """
        q, err = self._descend(q_init, position, rotation, iterations, tolerance)
        if err > 2e-3:
            q2, err2 = self._descend(self.elbow_up, position, rotation, 4 * iterations, tolerance)
            if err2 < err:
                return q2, err2
        return q, err

    def _descend(self, q_init: np.ndarray, position: np.ndarray, rotation: np.ndarray,
                 iterations: int, tolerance: float) -> tuple[np.ndarray, float]:
        q = np.clip(np.asarray(q_init, dtype=np.float64)[:5], self.lower, self.upper)
        d = self.data
        err_pos = np.inf
        for _ in range(iterations):
            d.qpos[self.qpos_adr] = q
            mujoco.mj_kinematics(self.model, d)
            mujoco.mj_comPos(self.model, d)
            err_pos_vec = position - d.site_xpos[self.site]
            current = d.site_xmat[self.site].reshape(3, 3)
            err_rot = 0.5 * sum(np.cross(current[:, i], rotation[:, i]) for i in range(3))
            err_pos = float(np.linalg.norm(err_pos_vec))
            if err_pos < tolerance and np.linalg.norm(err_rot) < 10 * tolerance:
                break
            mujoco.mj_jacSite(self.model, d, self._jacp, self._jacr, self.site)
            jac = np.vstack([self._jacp[:, self.dof_adr], self.rotation_weight * self._jacr[:, self.dof_adr]])
            err = np.concatenate([err_pos_vec, self.rotation_weight * err_rot])
            step = jac.T @ np.linalg.solve(jac @ jac.T + self.damping**2 * np.eye(6), err)
            q = np.clip(q + np.clip(step, -0.2, 0.2), self.lower, self.upper)
        return q, err_pos
