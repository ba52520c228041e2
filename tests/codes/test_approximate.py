"""Approximate codes: unbiasedness, optimality of least squares, ErasureHead."""

import itertools

import numpy as np
import pytest

from gradcode.codes import lstsq_decoding, make_code


@pytest.mark.parametrize("n,s", [(8, 2), (12, 3), (10, 1)])
def test_sgc_unbiased_under_random_stragglers_monte_carlo(n, s):
    code = make_code("sgc", n, s)
    rng = np.random.default_rng(3)
    trials = 20000
    total = np.zeros(n)
    for _ in range(trials):
        arrived = rng.choice(n, n - s, replace=False)
        total += code.decode(arrived).weights @ code.B
    mean = total / trials
    # Each coordinate is an average of bounded terms; its std is < 0.01 here.
    np.testing.assert_allclose(mean, 1.0, atol=0.03)


def test_sgc_is_biased_with_wrong_probability():
    code = make_code("sgc", 8, 2, p=0.5)  # true straggling rate is 2/8
    rng = np.random.default_rng(4)
    mean = np.mean(
        [code.decode(rng.choice(8, 6, replace=False)).weights @ code.B for _ in range(4000)],
        axis=0,
    )
    assert np.all(mean > 1.3), "scaling for p=0.5 overshoots when only 25% straggle"


def test_sgc_bernoulli_stragglers_unbiased():
    n, p = 10, 0.3
    code = make_code("sgc", n, 3, d=2, p=p)
    rng = np.random.default_rng(5)
    acc = np.zeros(n)
    trials = 20000
    for _ in range(trials):
        arrived = np.flatnonzero(rng.random(n) > p)
        acc += code.decode(arrived).weights @ code.B
    np.testing.assert_allclose(acc / trials, 1.0, atol=0.03)


@pytest.mark.parametrize("base", ["sgc", "erasurehead", "crc", "is_sgd"])
def test_lstsq_decoder_beats_any_other_decoder_on_same_B(base):
    code = make_code(base, 8, 3, rng=np.random.default_rng(0))
    for stragglers in itertools.combinations(range(8), 4):  # more than the design s
        arrived = [i for i in range(8) if i not in stragglers]
        opt = lstsq_decoding(code.B, arrived)
        assert opt.residual <= code.decode(arrived).residual + 1e-9


def test_lstsq_scheme_exact_when_possible():
    code = make_code("lstsq", 6, 2)  # cyclic support, unit coefficients
    d = code.decode(range(6))
    assert d.exact
    np.testing.assert_allclose(d.weights, 1 / 3)


def test_lstsq_custom_B_wrong_rows():
    with pytest.raises(ValueError, match="rows"):
        make_code("lstsq", 6, 2, B=np.ones((5, 6)))


def test_erasurehead_drops_uncovered_groups():
    code = make_code("erasurehead", 6, 1, d=2)  # groups {0,1} {2,3} {4,5}
    d = code.decode([0, 1, 3, 4])  # n - s = 5 not reached; groups 0,1,2 covered
    assert d.exact
    d = code.decode([0, 1, 4, 5])  # group {2,3} missing
    assert not d.exact
    np.testing.assert_allclose(d.weights, [0.5, 0.5, 0, 0, 0.5, 0.5])
    assert d.residual == pytest.approx(np.sqrt(2))
    assert code.ready(range(5)) and not code.ready(range(4))


def test_erasurehead_rescaled_is_unbiased_over_missing_group():
    code = make_code("erasurehead", 6, 1, d=2, rescale=True)
    mean = np.mean(
        [code.decode([i for i in range(6) if i // 2 != g]).weights @ code.B for g in range(3)],
        axis=0,
    )
    np.testing.assert_allclose(mean, 1.0)


def test_erasurehead_less_redundancy_than_s_plus_one():
    code = make_code("erasurehead", 12, 3, d=2)
    assert code.load == 2
    assert not code.decode([i for i in range(12) if i not in (0, 1, 5)]).exact


@pytest.mark.parametrize("n,s,d,p", [(12, 3, None, None), (97, 5, 3, 0.0), (40, 2, 40, 0.1)])
def test_sgc_batch_closed_form_matches_decode(n, s, d, p):
    """sgc's O(R n d) batch residual (pair counts, no per-pattern work) equals decode()."""
    code = make_code("sgc", n, s, d=d, p=p)
    rng = np.random.default_rng(n)
    used = rng.random((200, n)) < rng.uniform(0.5, 1.0, (200, 1))
    used[0] = True  # with p = 0 every partition gets exactly weight 1: exact
    exact, residual = code.decode_batch(used)
    for u, e, r in zip(used, exact, residual, strict=True):
        dec = code.decode(np.flatnonzero(u).tolist())
        assert dec.exact == e and dec.residual == pytest.approx(r, abs=1e-9)
    assert exact[0] == (code.p == 0.0)
