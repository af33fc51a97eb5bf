"""List the cameras (v4l2 devices) and whether each delivers frames, as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass

from so101lab.real.cameras import find_cameras


@dataclass
class Args:
    timeout: float = 5.0
    """Seconds to wait for a first frame from each device."""


def main(args: Args) -> None:
    found = find_cameras(args.timeout)
    print(json.dumps(found, indent=2))
    if not found:
        print("no /dev/video* device: is a camera plugged in (and is this Linux)?")
