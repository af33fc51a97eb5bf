"""Feature statistics as LeRobot stores them: per episode, and aggregated over the dataset.

Each feature gets min, max, mean, std, count and quantiles q01 q10 q50 q90 q99. Image stats are
per channel in [0, 1] with shape (3, 1, 1), computed on a subsample of (downscaled) frames.
Dataset quantiles are the count-weighted mean of episode quantiles: an approximation, but one
that lets each finished episode be added in O(1) without re-reading earlier data.
"""

from __future__ import annotations

import numpy as np

QUANTILES: dict[str, float] = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_KEYS = ("min", "max", "mean", "std", "count", *QUANTILES)
MAX_IMAGE_SAMPLES = 100  # frames per episode used for image stats

Stats = dict[str, np.ndarray]


def array_stats(values: np.ndarray) -> Stats:
    """Stats over axis 0 of ``values`` (N, ...) -> arrays of shape (...,), count of shape (1,)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if len(x) == 0:
        raise ValueError("cannot compute stats of an empty episode")
    out: Stats = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([len(x)], dtype=np.int64),
    }
    qs = np.quantile(x, list(QUANTILES.values()), axis=0)
    for name, q in zip(QUANTILES, qs, strict=True):
        out[name] = q
    return out


def image_stats(frames: np.ndarray) -> Stats:
    """Per-channel stats of uint8 frames (N, H, W, 3) scaled to [0, 1], each of shape (3, 1, 1)."""
    n = len(frames)
    pixels = np.asarray(frames, dtype=np.float32).reshape(-1, 3) / 255.0
    stats = array_stats(pixels)
    out = {k: v.reshape(3, 1, 1) for k, v in stats.items() if k != "count"}
    out["count"] = np.array([n], dtype=np.int64)
    return out


def sample_indices(length: int, max_samples: int = MAX_IMAGE_SAMPLES) -> np.ndarray:
    """Evenly spread frame indices used for image stats."""
    if length <= max_samples:
        return np.arange(length)
    return np.linspace(0, length - 1, max_samples).round().astype(np.int64)


def downscale(frame: np.ndarray, max_side: int = 80) -> np.ndarray:
    """A strided thumbnail of an HxWx3 frame: enough for per-channel stats, ~50x less memory."""
    step = max(1, max(frame.shape[:2]) // max_side)
    return np.ascontiguousarray(frame[::step, ::step])


def aggregate(episode_stats: list[dict[str, Stats]]) -> dict[str, Stats]:
    """Dataset stats from per-episode stats: exact min/max/mean/std/count, weighted quantiles."""
    if not episode_stats:
        return {}
    keys = episode_stats[0].keys()
    out: dict[str, Stats] = {}
    for key in keys:
        parts = [ep[key] for ep in episode_stats if key in ep]
        counts = np.array([p["count"][0] for p in parts], dtype=np.float64)
        w = counts / counts.sum()
        shape = (len(parts),) + (1,) * np.asarray(parts[0]["mean"]).ndim
        w = w.reshape(shape)
        means = np.stack([p["mean"] for p in parts])
        variances = np.stack([np.square(p["std"]) for p in parts])
        mean = (w * means).sum(axis=0)
        var = (w * (variances + np.square(means - mean))).sum(axis=0)
        agg: Stats = {
            "min": np.min(np.stack([p["min"] for p in parts]), axis=0),
            "max": np.max(np.stack([p["max"] for p in parts]), axis=0),
            "mean": mean,
            "std": np.sqrt(np.maximum(var, 0.0)),
            "count": np.array([int(counts.sum())], dtype=np.int64),
        }
        for q in QUANTILES:
            if all(q in p for p in parts):
                agg[q] = (w * np.stack([p[q] for p in parts])).sum(axis=0)
        out[key] = agg
    return out


def to_jsonable(stats: dict[str, Stats]) -> dict[str, dict[str, list]]:
    return {k: {s: np.asarray(v).tolist() for s, v in st.items()} for k, st in stats.items()}


def from_jsonable(stats: dict[str, dict[str, list]]) -> dict[str, Stats]:
    return {k: {s: np.asarray(v) for s, v in st.items()} for k, st in stats.items()}
