"""Single units: the ones that follow marked tokens, and gate saturation, with exact numbers."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.errors import RnnlabError
from rnnlab.lm.units import saturation, units_like


def test_the_units_that_follow_the_marks_come_first_either_way_round():
    rng = np.random.default_rng(0)
    marked = np.zeros(60, dtype=bool)
    marked[10:25] = marked[40:48] = True
    values = rng.normal(size=(60, 6))
    values[:, 3] = 2.0 * marked + 0.1 * rng.normal(size=60)  # high inside the marks
    values[:, 1] = -1.0 * marked + 0.3 * rng.normal(size=60)  # low inside them
    values[:, 5] = 0.7  # never changes: follows nothing
    order, r = units_like(values, marked)
    assert order[:2].tolist() == [3, 1]
    assert r[0] > 0.99 and -0.9 < r[1] < -0.7
    assert r[order.tolist().index(5)] == 0.0
    # The score is Pearson's r between the unit and the 0/1 mark.
    expected = np.corrcoef(values[:, 1], marked.astype(float))[0, 1]
    assert r[1] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("marks, message", [
    (np.ones(5, dtype=bool), "leave some unmarked"),
    (np.zeros(5, dtype=bool), "mark some tokens"),
    (np.array([True, False]), "cover the 5 tokens"),
])
def test_marks_that_compare_nothing_are_refused(marks, message):
    with pytest.raises(RnnlabError, match=message):
        units_like(np.zeros((5, 3)), marks)


def test_saturation_counts_the_steps_below_and_above_the_thresholds():
    f = np.array([[0.05, 0.5], [0.95, 0.5], [0.99, 0.09], [0.5, 0.91]])
    shares = saturation({"h": np.zeros((4, 2)), "f": f, "i": np.full((4, 2), 0.95)})
    assert set(shares) == {"f", "i"}
    np.testing.assert_array_equal(shares["f"], [[0.25, 0.5], [0.25, 0.25]])
    np.testing.assert_array_equal(shares["i"], [[0.0, 1.0], [0.0, 1.0]])
    with pytest.raises(RnnlabError, match="no gates"):
        saturation({"h": np.zeros((4, 2))})
