"""`so101lab viz`: a missing optional dependency is reported before anything is written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from so101lab.datasets.synthetic import write_synthetic
from so101lab.experiments import viz


def test_viz_rerun_without_rerun_fails_before_writing(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "ds"
    write_synthetic(root, [(5, "t")])
    monkeypatch.setitem(sys.modules, "rerun", None)  # what an install without rerun-sdk sees: ImportError
    out = tmp_path / "viz"
    with pytest.raises(SystemExit, match=r"rerun-sdk>=0\.23"):
        viz.main(viz.Args(root=root, out=out, rerun=True))
    assert not out.exists()
