"""The success-rate interval every launcher reports."""

import pytest

from so101lab.experiments.metrics import wilson_interval


def test_wilson_interval_known_values_and_symmetry():
    assert wilson_interval(100, 100)[0] == pytest.approx(0.963, abs=1e-3)  # 100/100 is not "certainly 1"
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    low, high = wilson_interval(7, 20)
    mirror = wilson_interval(13, 20)
    assert low == pytest.approx(1 - mirror[1]) and high == pytest.approx(1 - mirror[0])
    assert low < 7 / 20 < high
    assert wilson_interval(0, 0) == (0.0, 1.0)
