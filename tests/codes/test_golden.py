"""Golden small examples with known answers."""

import numpy as np
import pytest

from gradcode.codes import LinearCode, make_code

TANDON_B = np.array([[0.5, 1.0, 0.0], [0.0, 1.0, -1.0], [0.5, 0.0, 1.0]])


@pytest.mark.parametrize(
    "arrived,weights",
    [([1, 2], (0, 1, 2)), ([0, 2], (1, 0, 1)), ([0, 1], (2, -1, 0))],
)
def test_tandon_three_worker_example(arrived, weights):
    d = LinearCode(TANDON_B, s=1).decode(arrived)
    np.testing.assert_allclose(d.weights, weights, atol=1e-12)
    assert d.exact and d.residual < 1e-12


def test_tandon_example_messages():
    g = np.array([[1.0, 2.0], [3.0, 5.0], [7.0, 11.0]])
    code = LinearCode(TANDON_B, s=1)
    m = {i: code.encode(i, g[list(code.placement[i])]) for i in range(3)}
    np.testing.assert_allclose(m[0], g[0] / 2 + g[1])
    np.testing.assert_allclose(m[1], g[1] - g[2])
    np.testing.assert_allclose(code.decode([0, 1]).combine(m), g.sum(axis=0))


def test_frc_n6_s2_placement_and_decode():
    code = make_code("frc", 6, 2)
    assert code.placement == ((0, 1, 2),) * 3 + ((3, 4, 5),) * 3
    d = code.decode([2, 3, 5])
    np.testing.assert_allclose(d.weights, [0, 0, 1, 0.5, 0, 0.5])
    assert code.ready([2, 3]) and not code.ready([0, 1, 2])


def test_cyclic_mds_n5_s2_generator_polynomial():
    # Roots w^2, w^3 (w = e^{2 pi i / 5}) -> g(x) = x^2 - 2 cos(4 pi / 5) x + 1.
    code = make_code("cyclic_mds", 5, 2)
    np.testing.assert_allclose(code.B[0], [1, -2 * np.cos(4 * np.pi / 5), 1, 0, 0])


def test_is_sgd_weights_and_residual():
    d = make_code("is_sgd", 4, 1).decode([0, 2, 3])
    np.testing.assert_allclose(d.weights, [4 / 3, 0, 4 / 3, 4 / 3])
    assert d.residual == pytest.approx(np.sqrt(3 * (1 / 3) ** 2 + 1))
    assert not d.exact
