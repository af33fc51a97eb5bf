"""Policies: SmolVLA (LeRobot-compatible) and the shared chunked-action queue."""

from so101lab.policies.chunking import ActionQueue
from so101lab.policies.smolvla_config import SmolVLAConfig
from so101lab.policies.smolvla_policy import SmolVLAPolicy

__all__ = ["ActionQueue", "SmolVLAConfig", "SmolVLAPolicy"]
