"""The ``so101lab`` command: one subcommand per launcher module, imported only when used.

Each launcher module has ``main(args: Args)``; tyro turns the annotated dataclass into flags.
Every command ends the same way: SIGTERM and SIGHUP unwind like Ctrl-C (torque off, datasets
closed); a user mistake (a missing file, a bad argument, a disconnected arm) is one line on
stderr and exit code 1, its traceback shown with ``--traceback`` or ``SO101LAB_TRACEBACK=1``.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import typing

import tyro

from so101lab.shutdown import exit_code, stop_on_signals

TRACEBACK_FLAG = "--traceback"
TRACEBACK_ENV = "SO101LAB_TRACEBACK"

# command -> (module, one-line help). Modules are imported lazily so `so101lab --help` is instant
# and a command never pays for another's heavy imports (torch, transformers).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("so101lab.experiments.demo", "Main job: PickCube demos in sim, every expert evaluated, report."),
    "check-experts": ("so101lab.experiments.check_experts", "Success table of the scripted experts."),
    "collect": ("so101lab.experiments.collect", "Collect a LeRobot dataset in sim with the scripted expert."),
    "replay-sim": ("so101lab.experiments.replay_sim", "Replay a dataset episode's actions in sim; per-joint error."),
    "viz": ("so101lab.experiments.viz", "Show a dataset episode: cameras mp4, state/action plots, --rerun."),
    "train": ("so101lab.experiments.train", "Train SmolVLA (fresh or fine-tuned) or ACT on a LeRobot dataset."),
    "eval": ("so101lab.experiments.eval", "Evaluate a policy checkpoint in sim: success rate, videos."),
    "experiment": ("so101lab.experiments.experiment", "Closed loop: sim demos -> train -> eval -> results + plot."),
    "virtual-arm": ("so101lab.experiments.virtual_arm", "A virtual SO-101 on a pty; prints its port."),
    "find-port": ("so101lab.experiments.find_port", "Find the serial port of the arm (unplug/replug)."),
    "find-cameras": ("so101lab.experiments.find_cameras", "List cameras and whether they deliver frames."),
    "setup-motors": ("so101lab.experiments.setup_motors", "Assign motor ids and baud, one motor at a time."),
    "calibrate": ("so101lab.experiments.calibrate", "Calibrate an arm (LeRobot calibration file)."),
    "calibrate-camera": ("so101lab.experiments.calibrate_camera",
                         "Print a ChArUco board; camera intrinsics + pose from its photos (camera file)."),
    "teleoperate": ("so101lab.experiments.teleoperate", "Leader arm drives the follower and/or a sim twin."),
    "record": ("so101lab.experiments.record_real", "Record a LeRobot dataset on the real (or virtual) arm."),
    "replay": ("so101lab.experiments.replay_real", "Replay a recorded episode's actions on the arm."),
    "deploy": ("so101lab.experiments.deploy", "Run a policy on Real-v0 with chunked actions at 30 Hz."),
    "policy-server": ("so101lab.inference.server", "Serve a policy's action chunks over TCP (async inference)."),
    "sysid": ("so101lab.experiments.sysid", "Fit/evaluate the servo model on servo logs (fit, evaluate)."),
}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [f"usage: so101lab [{TRACEBACK_FLAG}] COMMAND [--help] [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", f"{TRACEBACK_FLAG} (or {TRACEBACK_ENV}=1): the full traceback of an error, not one line"]
    return "\n".join(lines)


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors about the user's arguments, files or devices (each message names the fix): one line."""
    from so101lab.datasets.checks import USER_ERRORS
    from so101lab.distributed.ray_cluster import ClusterError  # no Ray import
    from so101lab.errors import UsageError
    from so101lab.real.errors import HardwareError

    return (*USER_ERRORS, HardwareError, UsageError, ClusterError)


def bare_ray_flag(args: list[str]) -> list[str]:
    """``--ray`` without a value means ``--ray auto`` (the cluster this machine joined)."""
    out = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append("auto")
    return out


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    show_traceback = TRACEBACK_FLAG in argv or os.environ.get(TRACEBACK_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != TRACEBACK_FLAG]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return
    command, rest = argv[0], bare_ray_flag(argv[1:])
    if command not in COMMANDS:
        sys.exit(f"so101lab: unknown command {command!r}\n\n{_usage()}")
    stop_on_signals()  # SIGTERM/SIGHUP -> the same unwinding (torque off) as Ctrl-C
    try:
        module = importlib.import_module(COMMANDS[command][0])
        # `main(args: Args)`: tyro parses the annotated type (a dataclass or a union of them for
        # nested subcommands) so flags read `--episodes`, not `--args.episodes`.
        hints = typing.get_type_hints(module.main)
        arg_type = next(t for name, t in hints.items() if name != "return")
        module.main(tyro.cli(arg_type, args=rest, prog=f"so101lab {command}"))
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP: cleanup has run on the way here
        if show_traceback:
            traceback.print_exc()
        print(f"so101lab {command}: {e or 'interrupted'}", file=sys.stderr)
        sys.exit(exit_code(e))
    except SystemExit as e:  # a launcher's own one-line message: name the command like the others
        if isinstance(e.code, str) and not e.code.startswith("so101lab"):
            sys.exit(f"so101lab {command}: {e.code}")
        raise
    except user_errors() as e:
        if show_traceback:
            traceback.print_exc()
        sys.exit(f"so101lab {command}: {e}")


if __name__ == "__main__":
    main()
