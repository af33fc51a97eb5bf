"""Human demonstrations without a leader arm: keyboard or gamepad input, Cartesian IK, recording controls.

`inputs` turns key presses and gamepad events into `TeleopCommand`s (tool velocity, yaw and
pitch rates, gripper, recording controls); `cartesian` turns them into joint targets by IK;
`recording` runs LeRobot's recording phases (warm-up, episode, reset, re-record, stop) for a sim
env and Real-v0 alike.
"""
