"""The in-place message path (issue 15 item 3): buffers reused, results unchanged."""

import numpy as np
import pytest
import torch

from gradcode.codes import make_code
from gradcode.codes.base import accumulate
from gradcode.codes.pgc import PGC
from gradcode.codes.protocol import as_scheme, encode, sum_into

D = 5


@pytest.mark.parametrize("kind", ["numpy", "torch64", "torch32"])
def test_sum_into_reuses_the_buffer_and_equals_the_left_to_right_sum(kind):
    rng = np.random.default_rng(0)
    vs = [rng.standard_normal(D) * 10.0**e for e in (0, 8, -3, 2)]
    if kind != "numpy":
        dt = torch.float64 if kind == "torch64" else torch.float32
        vs = [torch.as_tensor(v, dtype=dt) for v in vs]
    buf = sum_into(None, vs)
    ref = vs[0] + vs[1] + vs[2] + vs[3]
    assert (buf == ref).all()
    again = sum_into(buf, vs[:2])
    assert again is buf and (buf == vs[0] + vs[1]).all()
    assert (sum_into(buf, vs[2:3]) == vs[2]).all()  # one vector: a copy into the buffer
    assert sum_into(buf[:2], vs) is not buf  # a buffer that does not fit is replaced


def test_accumulate_never_aliases_or_modifies_its_input():
    v = torch.ones(D)
    out = accumulate(None, v, 1.0)
    assert out is not v and out.data_ptr() != v.data_ptr()
    accumulate(out, v, -3.0)
    assert (v == 1).all() and (out == -2).all()
    a = np.ones(D, dtype=np.float32)
    assert accumulate(None, a, 2.0).dtype == np.float64  # numpy: combined in float64


def test_encode_into_a_buffer_matches_a_fresh_encode():
    code = make_code("crc", 6, 2, rng=np.random.default_rng(1))
    G = torch.randn(6, D, dtype=torch.float64)
    buf = torch.empty(D, dtype=torch.float64)
    for w in range(6):
        c, parts = code.coefficients(w), code.placement[w]
        fresh = encode(c, [G[p] for p in parts])
        into = encode(c, [G[p] for p in parts], out=buf)
        assert into is buf and torch.equal(into, fresh)


def test_codescheme_with_buffers_decodes_exactly_like_without():
    scheme = as_scheme(make_code("crc", 6, 2, rng=np.random.default_rng(1)))
    G = torch.randn(6, D, dtype=torch.float64)
    bufs = {w: torch.empty(D, dtype=torch.float64) for w in range(6)}
    for arrived in ([0, 1, 2, 3], [2, 3, 4, 5], [0, 2, 4, 5]):
        plain, reused = [], []
        for w in arrived:
            parts = scheme.compute_plan(None, w, 0)
            plain.append(scheme.worker_message(None, w, 0, {p: G[p] for p in parts})[1])
            m = scheme.worker_message(None, w, 0, {p: G[p] for p in parts}, out=bufs[w])[1]
            assert m.vector is bufs[w]
            reused.append(m)
        a = scheme.master_update(None, 0, plain)[1].gradient
        b = scheme.master_update(None, 0, reused)[1].gradient
        assert torch.equal(a, b)
        torch.testing.assert_close(b, G.sum(0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("placement", ["frc", "cr"])
def test_pgc_worker_keeps_one_sum_buffer_and_its_messages_stay_exact(placement):
    """Each steady-state message is the sum of the s+1 stored gradients (a running sum at
    r = 4: within 1e-12, exact at every re-sum; tests/codes/test_pgc_running_sum.py), written
    into the same buffer every round; release() drops exactly the gradient about to be
    recomputed."""
    scheme = PGC(8, 3, placement=placement, fill=0)
    rng = np.random.default_rng(4)
    st = scheme.init_worker(2)
    ptr = None
    for t in range(12):
        plan = scheme.compute_plan(st, 2, t)
        released = scheme.release(st, 2, plan)
        assert set(released.grads) == set(st.grads) - set(plan)
        grads = {p: torch.as_tensor(rng.standard_normal(D)) for p in plan}
        st, m = scheme.worker_message(released, 2, t, grads)
        exact = sum(st.grads[p] for p in scheme.placement[2])
        torch.testing.assert_close(m.vector, exact, rtol=1e-12, atol=1e-12)
        assert m.vector is st.total and (st.running != 0 or torch.equal(m.vector, exact))
        ptr = m.vector.data_ptr() if ptr is None else ptr
        assert m.vector.data_ptr() == ptr  # one buffer for the worker's whole life
        assert len(st.grads) == scheme.r  # s+1 gradients, nothing more


def test_pgc_filling_message_is_the_fresh_gradient_itself():
    scheme = PGC(4, 1)  # fill = 2
    st, _ = scheme.worker_message(scheme.init_worker(0), 0, 0, {0: torch.ones(D), 1: torch.ones(D)})
    g = torch.full((D,), 2.0)
    (p,) = scheme.compute_plan(st, 0, 1)
    _, m = scheme.worker_message(st, 0, 1, {p: g})
    assert m.vector is g
