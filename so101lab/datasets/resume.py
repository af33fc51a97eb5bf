"""Appending to a dataset without recording a scene twice: the seeds and env ids of its episodes.

Launchers store each episode's ``seed`` (and, in sim, its ``env_id``) in meta/episodes. A rerun
on the same root continues after the seeds already recorded; asking for recorded seeds again is
refused unless duplicates are explicitly allowed, and mixing env ids in one dataset likewise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from so101lab.datasets.format import DatasetInputError


def recorded_seeds(episodes: list[dict[str, Any]], env_id: str | None = None) -> list[int]:
    """Sorted seeds of the episodes (of ``env_id`` only, if given) that record one."""
    return sorted(
        int(ep["seed"])
        for ep in episodes
        if ep.get("seed") is not None and (env_id is None or ep.get("env_id") == env_id)
    )


def first_seed(
    episodes: list[dict[str, Any]],
    requested: int | None,
    span: int,
    root: Path,
    env_id: str | None = None,
    allow_duplicates: bool = False,
) -> int:
    """The first seed of a run that may use seeds ``[first, first + span)``.

    ``requested=None`` continues one past the highest recorded seed (0 for a new dataset). An
    explicit seed whose range holds recorded seeds is refused unless ``allow_duplicates``.
    """
    seeds = recorded_seeds(episodes, env_id)
    following = max(seeds, default=-1) + 1
    if requested is None:
        return following
    clash = [s for s in seeds if requested <= s < requested + span]
    if clash and not allow_duplicates:
        of = f" of {env_id}" if env_id else ""
        raise DatasetInputError(
            f"{root} already holds episodes{of} with seeds {_ranges(clash)}, which --seed {requested} "
            f"would record again (this run may use seeds {requested}..{requested + span - 1}); "
            f"leave out --seed to continue at {following}, or pass --allow-duplicate-seeds"
        )
    return requested


def check_env_id(episodes: list[dict[str, Any]], env_id: str, root: Path, allow_mixed: bool = False) -> None:
    """Refuse to add ``env_id`` episodes to a dataset of other env ids unless ``allow_mixed``."""
    others = sorted({str(ep["env_id"]) for ep in episodes if ep.get("env_id") not in (None, env_id)})
    if others and not allow_mixed:
        raise DatasetInputError(
            f"{root} holds episodes of {', '.join(others)}, not {env_id}; "
            "pass --allow-mixed-env-ids to collect several envs into one dataset"
        )


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0..2, 5' (a long list of seeds stays one short line)."""
    parts: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(f"{start}..{prev}" if prev > start else f"{start}")
        if v is not None:
            start = prev = v
    return ", ".join(parts[:5]) + (", ..." if len(parts) > 5 else "")
