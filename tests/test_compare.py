"""helpers.compare and helpers.machine: small pieces the notebooks report with."""
import numpy as np
import pytest

from helpers import compare, machine


def test_correlation_of_fingerprints():
    rng = np.random.default_rng(0)
    a = rng.random((64, 64, 3))
    assert compare.correlation(a, a) == pytest.approx(1.0)
    assert compare.correlation(a, 2 * a + 1) == pytest.approx(1.0)
    assert compare.correlation(a, -a) == pytest.approx(-1.0)
    assert abs(compare.correlation(a, rng.random((64, 64, 3)))) < 0.05
    with pytest.raises(ValueError, match="different sizes"):
        compare.correlation(a, a[:32])


def test_class_correlations_within_and_between():
    rng = np.random.default_rng(1)
    patterns = rng.random((3, 8, 8, 3))
    labels = np.repeat([0, 1, 2], 4)
    X = patterns[labels] + 0.01 * rng.random((12, 8, 8, 3))  # each class: one pattern, a little noise
    within, between = compare.class_correlations(X, labels, 3)
    assert np.all(within > 0.99) and np.all(np.abs(between) < 0.3)
    within, _ = compare.class_correlations(X[:5], labels[:5], 3)  # class 1 has one member, class 2 none
    assert np.isnan(within[1]) and np.isnan(within[2]) and within[0] > 0.99


def test_machine_description_names_the_cpu_and_its_flags():
    d = machine.describe()
    assert d["cpu"] and d["cores"] >= 1 and set(d["vector_flags"]) <= set(machine.VECTOR_FLAGS)
    assert d["cpu"] in machine.describe_text()
