"""The pendulum test bench as MJCF: one servo-driven pendulum per bench run, all in one model.

Putting every run's pendulum in one model lets a single `mj_step` advance all of them, so the
fitter simulates the whole data set in one tight loop. The pendulums share no geometry, so they
do not interact. Physics options are the SO-101 scene's, so the identified parameters hold at
the rate and with the integrator the envs use.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

import mujoco
import numpy as np

from so101lab.sysid.logs import BenchLink

SCENE_XML = Path(__file__).resolve().parent.parent / "assets" / "so101" / "scene.xml"


@cache
def scene_options() -> dict[str, str]:
    """The `<option>` attributes of the SO-101 scene (timestep, integrator, cone, impratio)."""
    option = ET.parse(SCENE_XML).getroot().find("option")
    if option is None or "timestep" not in option.attrib:
        raise ValueError(f"{SCENE_XML}: no <option timestep=...>")
    return dict(option.attrib)


def env_timestep() -> float:
    """The physics step of the sim envs (s)."""
    return float(scene_options()["timestep"])


def joint_name(index: int) -> str:
    return f"servo{index}"


def bench_xml(links: list[BenchLink], physics_dt: float | None = None) -> str:
    """MJCF of one pendulum per link. Each link turns about its own z axis, laid horizontal, with
    its -x axis pointing down at q = 0 (hanging straight down, as the bench defines zero)."""
    if not links:
        raise ValueError("bench_xml: no links given")
    options = dict(scene_options())
    if physics_dt is not None:
        options["timestep"] = repr(float(physics_dt))
    option_attrs = " ".join(f'{k}="{v}"' for k, v in options.items())
    bodies, actuators = [], []
    for i, link in enumerate(links):
        com = " ".join(f"{v:.9g}" for v in np.asarray(link.com, float))
        inertia = " ".join(f"{v:.9g}" for v in np.asarray(link.fullinertia, float))
        # xyaxes: link x = world +z, link y = world +x, so link z (the axis) = world +y.
        bodies.append(
            f'    <body name="link{i}" pos="0 {0.5 * i:.3f} 0.5" xyaxes="0 0 1 1 0 0">\n'
            f'      <joint name="{joint_name(i)}" type="hinge" axis="0 0 1"/>\n'
            f'      <inertial pos="{com}" mass="{link.mass:.9g}" fullinertia="{inertia}"/>\n'
            f"    </body>"
        )
        actuators.append(f'    <position name="{joint_name(i)}" joint="{joint_name(i)}" kp="1"/>')
    return (
        '<mujoco model="sts3215 pendulum bench">\n'
        f"  <option {option_attrs}/>\n"
        "  <worldbody>\n" + "\n".join(bodies) + "\n  </worldbody>\n"
        "  <actuator>\n" + "\n".join(actuators) + "\n  </actuator>\n"
        "</mujoco>\n"
    )


def bench_model(links: list[BenchLink], physics_dt: float | None = None) -> mujoco.MjModel:
    """Compiled bench model; joints and actuators are named `servo0`, `servo1`, ..."""
    return mujoco.MjModel.from_xml_string(bench_xml(links, physics_dt))
