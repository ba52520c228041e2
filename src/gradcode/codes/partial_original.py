"""The original GC protocol as a baseline for partial stragglers: fixed codes, least squares.

In the original gradient-coding protocol a worker reports once, after its
whole chunk list, with a *fixed* encoding chosen before the round; the
master decodes from whichever workers have finished.  This is the baseline
of Ramamoorthy, Meng, Girimaji ("Leveraging partial stragglers within
gradient coding", NeurIPS 2024), whose protocol instead re-encodes per chunk
(:mod:`gradcode.codes.partial`).  Two fixed codes on a
:class:`~gradcode.codes.ordering.ChunkAssignment` with ``delta`` holders per
chunk, tolerating ``s = delta - l`` failures:

* ``l = 1``: Tandon, Lei, Dimakis, Karampatziakis ("Gradient Coding",
  ICML 2017, Algorithm 2) generalised to any support: draw ``H`` (``s x N``,
  Gaussian, ``H 1 = 0``); row ``j`` of ``B`` is the vector of ``null(H)``
  supported on worker ``j``'s chunks with a 1 at its first chunk
  (:func:`tandon_matrix`).  Each worker sends one vector of length ``d``.
* ``l >= 1``: the communication-efficient polynomial code of Ye and Abbe
  ("Communication-computation efficient gradient coding", ICML 2018),
  generalised to any support (:func:`polynomial_code`): worker ``j`` sends
  ``u(theta_j)`` (length ``d / l``), where ``u(x) = sum_t q_t x^t`` has degree
  ``m - s - 1``, its top ``l`` coefficients are the ``l`` parts of the full
  gradient, and the ``m - delta`` lower ones are chosen per (chunk, part) so
  that ``u(theta_j)`` only involves chunks worker ``j`` holds (one
  ``(m - delta) x (m - delta)`` Vandermonde solve each).  Any ``m - s``
  evaluations determine ``u``; the Vandermonde matrices make it numerically
  fragile for large ``m``, which is the paper's motivation.

A code is the encoding matrix ``E`` (``m x N l``): worker ``j`` sends
``f_j = E[j] @ vec(G)`` with ``vec(G)[i l + k]`` = part ``k`` of chunk
``i``'s gradient.  From finished workers ``F`` the master takes the
least-squares decoder ``D = argmin ||D E_F - J||_F`` with ``J = 1_N^T (x) I_l``;
for i.i.d. isotropic chunk gradients the normalised MSE of its estimate is

    nmse(F) = ||D E_F - J||_F^2 / (N l) = 1 - ||J P_F||_F^2 / (N l),

``P_F`` the orthogonal projector onto the row space of ``E_F``
(:meth:`FixedCode.nmse`).  Example (``m = N = 5``, ``delta = 3``, ``l = 1``)::

    >>> import numpy as np
    >>> from gradcode.codes.ordering import cyclic_assignment
    >>> code = FixedCode.tandon(cyclic_assignment(5, 3), np.random.default_rng(0))
    >>> round(code.nmse([0, 1, 2]), 12), code.nmse([0, 1]) > 0
    (0.0, True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .ordering import ChunkAssignment


def tandon_matrix(assignment: ChunkAssignment, rng: np.random.Generator) -> np.ndarray:
    """Tandon's null-space ``B`` (``m x N``) on the assignment's support, ``s = delta - 1``."""
    s = assignment.delta - 1
    H = rng.standard_normal((s, assignment.N))
    if s:
        H[:, -1] = -H[:, :-1].sum(axis=1)
    B = np.zeros((assignment.m, assignment.N))
    for j, order in enumerate(assignment.order):
        first, rest = order[0], list(order[1:])
        if len(rest) < s:
            raise ValueError(f"worker {j} holds {len(order)} chunks, fewer than s + 1 = {s + 1}")
        B[j, first] = 1.0
        if s and rest:
            B[j, rest] = np.linalg.lstsq(H[:, rest], -H[:, first], rcond=None)[0]
    return B


def polynomial_code(assignment: ChunkAssignment, l: int) -> np.ndarray:
    """Ye-Abbe polynomial code on the assignment's support: ``E`` of shape ``(m, N l)``.

    Needs every chunk to have exactly ``delta`` holders (``s = delta - l``).
    Evaluation points: Chebyshev nodes on ``[-1, 1]``.
    """
    m, N = assignment.m, assignment.N
    reps = assignment.replication
    delta = int(reps.min())
    if (reps != delta).any():
        raise ValueError("the polynomial code needs every chunk on the same number of workers")
    if not 1 <= l <= delta:
        raise ValueError(f"l must satisfy 1 <= l <= delta={delta}, got {l}")
    s = delta - l
    deg = m - s  # number of coefficients
    theta = np.cos((2 * np.arange(m) + 1) * np.pi / (2 * m))
    V = np.vander(theta, deg, increasing=True)  # V[j, t] = theta_j^t
    free = deg - l  # = m - delta lower coefficients, solved per (chunk, part)
    E = np.zeros((m, N * l))
    for i in range(N):
        nh = np.flatnonzero(assignment.A[i] == 0)  # the m - delta non-holders
        for k in range(l):
            q = np.zeros(deg)
            q[deg - 1 - k] = 1.0  # coefficient of x^(deg-1-k) is part k
            if free:
                rhs = -V[np.ix_(nh, [deg - 1 - k])] @ q[[deg - 1 - k]]
                q[:free] = np.linalg.solve(V[np.ix_(nh, np.arange(free))], rhs)
            E[:, i * l + k] = V @ q
    E[np.repeat(assignment.A.T, l, axis=1) == 0] = 0.0  # exact zeros left by round-off
    return E


class FixedCode:
    """A fixed encoding ``E`` (``m x N l``) decoded by least squares on the finished workers."""

    def __init__(self, assignment: ChunkAssignment, l: int, E: np.ndarray, name: str) -> None:
        E = np.array(E, dtype=np.float64)
        if E.shape != (assignment.m, assignment.N * l):
            raise ValueError(f"E must have shape (m, N l) = {(assignment.m, assignment.N * l)}")
        E.setflags(write=False)
        self.assignment, self.l, self.E, self.name = assignment, int(l), E, name
        self.s = assignment.delta - self.l
        self._J = np.kron(np.ones((1, assignment.N)), np.eye(self.l))
        self._cache: dict[frozenset, float] = {}

    @classmethod
    def tandon(cls, assignment: ChunkAssignment, rng: np.random.Generator) -> FixedCode:
        """``l = 1``: Tandon et al.'s ``B``."""
        return cls(assignment, 1, tandon_matrix(assignment, rng), "tandon")

    @classmethod
    def polynomial(cls, assignment: ChunkAssignment, l: int) -> FixedCode:
        """Any ``l``: the Ye-Abbe polynomial code."""
        return cls(assignment, l, polynomial_code(assignment, l), "polynomial")

    @classmethod
    def default(cls, assignment: ChunkAssignment, l: int, rng: np.random.Generator) -> FixedCode:
        """Tandon's ``B`` for ``l = 1``, the polynomial code for ``l > 1``."""
        return cls.tandon(assignment, rng) if l == 1 else cls.polynomial(assignment, l)

    def nmse(self, finished: Sequence[int]) -> float:
        """Normalised MSE of the least-squares estimate from workers ``finished``."""
        key = frozenset(int(j) for j in finished)
        hit = self._cache.get(key)
        if hit is None:
            if not key:
                hit = 1.0
            else:
                EF = self.E[sorted(key)]
                _, sv, Vt = np.linalg.svd(EF, full_matrices=False)
                r = int(np.sum(sv > sv[0] * max(EF.shape) * np.finfo(float).eps)) if sv.size else 0
                proj = self._J @ Vt[:r].T
                hit = float(max(0.0, 1.0 - np.sum(proj**2) / (self.assignment.N * self.l)))
            self._cache[key] = hit
        return hit

    def decode_weights(self, finished: Sequence[int]) -> np.ndarray:
        """The least-squares decoder ``D`` (``l x |F|``), for pushing real vectors through."""
        EF = self.E[sorted(int(j) for j in finished)]
        return np.linalg.lstsq(EF.T, self._J.T, rcond=None)[0].T

    def __repr__(self) -> str:
        a = self.assignment
        return f"FixedCode({self.name}, m={a.m}, N={a.N}, l={self.l}, s={self.s})"


def worker_finish(assignment: ChunkAssignment, times: np.ndarray) -> np.ndarray:
    """``(trials, m)`` time each worker finishes its whole list (chunk times ``(trials, m, L)``)."""
    times = np.asarray(times, dtype=np.float64)
    loads = assignment.loads
    if times.ndim != 3 or times.shape[1] != assignment.m or times.shape[2] < loads.max():
        raise ValueError(f"times must have shape (trials, m={assignment.m}, >= {loads.max()})")
    return np.cumsum(times, axis=-1)[:, np.arange(assignment.m), loads - 1]


def nmse_original(code: FixedCode, finish: np.ndarray, deadlines: np.ndarray) -> np.ndarray:
    """``(trials, len(T))`` NMSE of least squares on the workers whose message arrived by ``T``.

    ``finish`` is ``(trials, m)``: when each worker's one message arrives
    (:func:`worker_finish`, plus a send time if communication is modelled).
    One SVD per distinct finished set (at most ``m + 1`` per trial).
    """
    finish = np.asarray(finish, dtype=np.float64)
    T = np.asarray(deadlines, dtype=np.float64)
    out = np.empty((finish.shape[0], T.size))
    for t, row in enumerate(finish):
        for k, deadline in enumerate(T):
            out[t, k] = code.nmse(np.flatnonzero(row <= deadline))
    return out
