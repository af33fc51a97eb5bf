"""LeRobot v3.0 datasets: a crash-safe writer and a fast torch reader (v3.0 and v2.1).

from so101lab.datasets import DatasetWriter, LeRobotDataset
"""

from so101lab.datasets.format import DatasetFileError, DatasetInputError, robot_features
from so101lab.datasets.lock import DatasetLockedError
from so101lab.datasets.meta import DatasetMeta
from so101lab.datasets.reader import LeRobotDataset
from so101lab.datasets.recorder import EpisodeData, EpisodeRecorder, VideoSettings
from so101lab.datasets.writer import DatasetWriter

__all__ = [
    "DatasetFileError",
    "DatasetInputError",
    "DatasetLockedError",
    "DatasetMeta",
    "DatasetWriter",
    "EpisodeData",
    "EpisodeRecorder",
    "LeRobotDataset",
    "VideoSettings",
    "robot_features",
]
