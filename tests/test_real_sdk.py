"""Cross-check of the virtual arm against the vendor SDK and LeRobot (reference venv, if installed)."""

import json
import subprocess
from pathlib import Path

import pytest

from so101lab.real.virtual_arm import VirtualArm

REF_PYTHON = Path("/root/.cache/lerobot-ref/bin/python")
SCRIPT = Path(__file__).parents[1] / "scripts" / "sdk_crosscheck.py"


@pytest.mark.skipif(not REF_PYTHON.exists(), reason="reference LeRobot venv not installed")
def test_vendor_sdk_and_lerobot_talk_to_the_virtual_arm():
    with VirtualArm(seed=5) as arm:
        before = {m.id: m.get("Present_Position") for m in arm.motors}
        run = subprocess.run([str(REF_PYTHON), str(SCRIPT), arm.port], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        out = json.loads(run.stdout.strip().splitlines()[-1])
        assert out["sdk_ping"] == [777, 0, 0]
        assert out["sdk_read_present_2"] == [before[2], 0, 0]
        assert out["sdk_write_p_3"] == [0, 0] and arm.motors[2].get("P_Coefficient") == 16
        assert out["sdk_sync_read_comm"] == 0
        assert {int(k): v for k, v in out["sdk_sync_read"].items()} == before
        assert sorted(map(int, out["lerobot_broadcast_ping"])) == [1, 2, 3, 4, 5, 6]
        assert out["lerobot_sync_read"] == {m.name: before[m.id] for m in arm.motors}
        assert out["lerobot_homing_readback"] == -321 == arm.motors[0].get("Homing_Offset")
        assert out["lerobot_after_homing"] == before[1] + 321
        assert out["lerobot_goal_readback"] == 2100
        assert not arm.torque_enabled().any()  # LeRobot's disconnect turned torque off
