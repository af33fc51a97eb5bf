"""Every way a launcher ends is safe: signals, no terminal, user mistakes, a vanished port, SIGKILL."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from so101lab.experiments import cli
from so101lab.real.arm import SO101Arm
from so101lab.real.calibration import save_calibration
from so101lab.real.errors import ArmDisconnectedError
from so101lab.real.virtual_arm import VirtualArm

CLI = [sys.executable, "-m", "so101lab.experiments.cli"]


def wait_until(condition, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def one_line(stderr: str) -> str:
    """The error output is one line and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def arms(tmp_path):
    """A leader and a follower virtual arm in this process, with calibration files."""
    with VirtualArm(seed=1) as leader, VirtualArm(seed=2) as follower:
        files = (save_calibration(leader.calibration(), tmp_path / "leader.json"),
                 save_calibration(follower.calibration(), tmp_path / "follower.json"))
        yield leader, follower, files


def teleoperate(arms, seconds: float = 60.0) -> subprocess.Popen:
    leader, follower, (leader_cal, follower_cal) = arms
    cmd = [*CLI, "teleoperate", "--leader-port", leader.port, "--follower-port", follower.port,
           "--leader-calibration", str(leader_cal), "--follower-calibration", str(follower_cal),
           "--seconds", str(seconds)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: follower.torque_enabled().all() or proc.poll() is not None, what="teleoperation")
    assert proc.poll() is None, proc.communicate()
    return proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_termination_signals_turn_torque_off_like_ctrl_c(arms, signum):
    follower = arms[1]
    proc = teleoperate(arms)
    time.sleep(0.3)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum
    assert one_line(err) == f"so101lab teleoperate: stopped by {signal.Signals(signum).name}"
    assert not follower.torque_enabled().any()


def test_a_vanished_port_is_one_line_saying_the_arm_disconnected(arms):
    proc = teleoperate(arms)
    time.sleep(0.3)
    arms[1].stop()  # the follower's USB cable is pulled
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert one_line(err).startswith("so101lab teleoperate: the arm disconnected:"), err


def test_a_vanished_port_raises_once_and_torque_off_stays_quiet(caplog):
    virtual = VirtualArm(seed=3).start()
    arm = SO101Arm(virtual.port, virtual.calibration()).connect()
    virtual.stop()
    with caplog.at_level(logging.WARNING), pytest.raises(ArmDisconnectedError, match="the arm disconnected"):
        arm.send(arm.read())
    arm.disconnect()
    assert not caplog.records  # not one "could not turn torque off" warning per motor
    assert not arm.connected


@pytest.mark.parametrize("command", ["find-port", "setup-motors", "calibrate"])
def test_prompts_end_without_a_terminal(command, tmp_path):
    """stdin from /dev/null: a prompt asking the operator to act stops the command with one line."""
    with VirtualArm(factory=command == "setup-motors") as arm:
        args = [] if command == "find-port" else ["--port", arm.port]
        args += ["--out", str(tmp_path / "cal.json")] if command == "calibrate" else []
        result = subprocess.run([*CLI, command, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 1
    assert "no operator: input ended at the prompt" in one_line(result.stderr)


@pytest.mark.parametrize("argv, message", [
    (["teleoperate", "--leader-port", "/dev/null", "--follower-port", "/dev/null", "--leader-calibration",
      "/nonexistent/leader.json"],
     "calibration file /nonexistent/leader.json does not exist; run `so101lab calibrate` first"),
    (["replay", "--port", "/dev/so101-missing", "--root", "{tmp}", "--calibration", "{cal}"],
     "serial port /dev/so101-missing does not exist"),
    (["record", "--port", "virtual:NoSuchTask", "--root", "{tmp}/d", "--teleop", "expert"],
     "unknown task 'NoSuchTask'"),
    (["record", "--port", "virtual:PickCube", "--root", "{tmp}/d", "--cameras", "front", "--image-size", "9999", "3"],
     "image height 9999 is out of range"),
])  # fmt: skip
def test_user_mistakes_are_one_line(argv, message, tmp_path, capsys, monkeypatch):
    import numpy as np

    from so101lab.experiments import replay_real

    monkeypatch.setattr(replay_real, "episode_columns",  # a dataset that exists, to reach the port
                        lambda root, ep: {"action": np.zeros((2, 6)), "observation.state": np.zeros((2, 6))})
    with VirtualArm() as arm:
        cal = save_calibration(arm.calibration(), tmp_path / "cal.json")
    argv = [a.format(tmp=tmp_path, cal=cal) for a in argv]
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert str(exit_.value.code).startswith(f"so101lab {argv[0]}: ")
    assert message in str(exit_.value.code) and "\n" not in str(exit_.value.code)
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--traceback", *argv])
    assert "Traceback" in capsys.readouterr().err


def test_virtual_arm_removes_its_socket_on_sigterm(tmp_path):
    sock = tmp_path / "world.sock"
    proc = subprocess.Popen([*CLI, "virtual-arm", "--task", "PickCube", "--socket", str(sock)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("port: ")
        wait_until(sock.exists, what="the socket")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "stopped after" in out, (out, err)
    assert not sock.exists()


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_collect_killed_by_sigkill_leaves_no_worker_behind(tmp_path):
    cmd = [*CLI, "collect", "--root", str(tmp_path / "d"), "--episodes", "4", "--workers", "2",
           "--cameras", "front", "--image-size", "48", "64", "--visual", "primitive", "--vcodec", "h264"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers: set[int] = set()
    try:
        wait_until(lambda: len(_children(proc.pid)) >= 2, what="collect's workers")
        time.sleep(1.0)  # the workers are importing or running episodes
        workers = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_until(lambda: not any(_alive(p) for p in workers), timeout=15, what="the workers to exit")
    finally:
        proc.kill()
        for pid in workers:  # if the test failed: do not leave them running either
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
