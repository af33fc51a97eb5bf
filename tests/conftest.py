"""Headless rendering for every test, whichever module imports mujoco first; two XLA CPU devices
(before jax starts), so the MJX tests run batches split over devices as on a multi-core host; and
oneDNN held to plain AVX-512 kernels (before torch runs any), because bfloat16 matmuls round
differently on AMX and the LeRobot fixtures' bfloat16 numbers came from AVX-512 kernels."""

import os

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
try:
    from so101lab.envs.mjx import split_host_into_devices
except ImportError:  # no `mjx` extra: the MJX tests skip
    pass
else:
    split_host_into_devices(2)

import pytest


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models on a shared 2-core box: OpenMP threads spinning against other jobs cost 10x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- compatibility tests against the reference LeRobot clients (marker `compat`) ---------------
# The reference pythons come from SO101LAB_LEROBOT_REF (0.4.4) / SO101LAB_LEROBOT06_REF (0.6.1), set
# by .ci/run, else the setup scripts' default cache paths. Locally a missing client skips; under
# CI=true it fails, so a CI run can never pass while quietly not checking compatibility.
from pathlib import Path  # noqa: E402

REFERENCE_CLIENTS = {
    "0.4.4": ("SO101LAB_LEROBOT_REF", "lerobot-ref"),
    "0.6.1": ("SO101LAB_LEROBOT06_REF", "lerobot-ref-061"),
}


def reference_python(version: str) -> Path:
    """The python of the reference LeRobot `version` venv; skips (fails under CI=true) without it."""
    var, cache = REFERENCE_CLIENTS[version]
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / cache / "bin" / "python"
    path = Path(os.environ.get(var) or default)
    if not path.exists():
        message = f"reference LeRobot {version} not found at {path} (set {var}; .ci/run builds it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def lerobot044() -> Path:
    return reference_python("0.4.4")


@pytest.fixture(scope="session")
def lerobot061() -> Path:
    return reference_python("0.6.1")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "compat: runs a reference LeRobot client (0.4.4 or 0.6.1) in a subprocess")


_compat_outcomes: dict[str, str] = {}


def pytest_runtest_logreport(report) -> None:
    if "compat" in report.keywords and (report.when == "call" or report.outcome != "passed"):
        _compat_outcomes[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter) -> None:
    """One line per compatibility test and a total, so a CI log shows what was checked against LeRobot."""
    if not _compat_outcomes:
        return
    terminalreporter.section("compatibility tests (reference LeRobot clients)")
    for nodeid, outcome in sorted(_compat_outcomes.items()):
        terminalreporter.write_line(f"{outcome.upper():8s} {nodeid}")
    counts = {o: list(_compat_outcomes.values()).count(o) for o in ("passed", "failed", "skipped")}
    terminalreporter.write_line("compat: " + ", ".join(f"{n} {o}" for o, n in counts.items()))
