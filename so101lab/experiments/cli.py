"""The ``so101lab`` command: one subcommand per launcher module, imported only when used.

Each launcher module has a ``main`` whose (dataclass) arguments tyro turns into flags.
"""

from __future__ import annotations

import importlib
import sys

import tyro

# command -> (module, one-line help). Modules are imported lazily so `so101lab --help` is instant
# and a command never pays for another's heavy imports (torch, transformers).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("so101lab.experiments.demo", "Main job: scripted demos in sim for every task, report + video."),
    "check-experts": ("so101lab.experiments.check_experts", "Success table of the scripted experts."),
    "train": ("so101lab.experiments.train", "Train/fine-tune SmolVLA on a LeRobot dataset (resumable)."),
    "eval": ("so101lab.experiments.eval", "Evaluate a policy checkpoint in sim: success rate, videos."),
}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: so101lab COMMAND [--help] [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        sys.exit(f"so101lab: unknown command {command!r}\n\n{_usage()}")
    module = importlib.import_module(COMMANDS[command][0])
    tyro.cli(module.main, args=rest, prog=f"so101lab {command}")


if __name__ == "__main__":
    main()
