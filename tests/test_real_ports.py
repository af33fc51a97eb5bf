"""`--port`: parsed once into a serial device or a virtual arm, with specific errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from so101lab.contract import JOINT_NAMES
from so101lab.real.calibration import MotorCalibration
from so101lab.real.cameras import open_cameras
from so101lab.real.ports import PortSpec, open_port, resolve_calibration


@pytest.mark.parametrize(("spec", "kind", "target"), [
    ("/dev/ttyACM0", "serial", "/dev/ttyACM0"),
    ("COM3", "serial", "COM3"),
    ("virtual:SortCubes", "virtual", "SortCubes"),
    ("virtual:", "virtual", "PickCube"),
    ("virtual@/tmp/so101lab-virtual-7.sock", "remote", "/tmp/so101lab-virtual-7.sock"),
])  # fmt: skip
def test_port_specs_parse_to_kind_and_target(spec, kind, target):
    assert PortSpec.parse(spec) == PortSpec(kind, target)


@pytest.mark.parametrize(("spec", "message"), [
    ("virtual", "virtual:<Task> or virtual@<socket>"),
    ("virtual-PickCube", "virtual:<Task> or virtual@<socket>"),
    ("virtual@", "needs the socket"),
])  # fmt: skip
def test_malformed_virtual_ports_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        PortSpec.parse(spec)


def test_a_serial_port_has_no_virtual_world(tmp_path):
    with open_port("/dev/ttyUSB9") as port:
        assert port.path == "/dev/ttyUSB9" and port.hooks is None
        assert resolve_calibration(tmp_path / "missing.json", port) == tmp_path / "missing.json"
        with pytest.raises(ValueError, match=r"camera 'front' needs a device \(name=/dev/videoN\)"):
            open_cameras(("front",), port)


def test_a_virtual_port_brings_its_scene_calibration_and_cameras(tmp_path):
    with open_port("virtual:PickCube", seed=3) as port:
        assert Path(port.path).exists() and port.hooks is port.world
        cal = resolve_calibration(tmp_path / "missing.json", port)
        assert list(cal) == list(JOINT_NAMES) and isinstance(cal["gripper"], MotorCalibration)
        cams = open_cameras(("front",), port, (48, 64))
        try:
            assert cams["front"].read().shape == (48, 64, 3)
        finally:
            cams["front"].close()
    assert not Path(port.path).exists()  # the world was stopped with the block
