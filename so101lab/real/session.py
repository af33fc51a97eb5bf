"""Former home of the hardware launchers' shared parts, kept so existing imports keep working.

Each job now has its own module: `so101lab.real.ports` (``--port`` parsing and opening, the
calibration a virtual arm supplies), `so101lab.real.cameras` (``open_cameras``),
`so101lab.real.keyboard` (prompts) and `so101lab.real.calibration` (default file paths).
"""

from so101lab.real.calibration import CALIBRATION_DIR, default_calibration
from so101lab.real.cameras import open_cameras
from so101lab.real.keyboard import EnterPressed, Keyboard, ask_yes_no, wait_for_enter
from so101lab.real.ports import Port, PortSpec, open_port, resolve_calibration

__all__ = [
    "CALIBRATION_DIR", "EnterPressed", "Keyboard", "Port", "PortSpec", "ask_yes_no", "default_calibration",
    "open_cameras", "open_port", "resolve_calibration", "wait_for_enter",
]  # fmt: skip
