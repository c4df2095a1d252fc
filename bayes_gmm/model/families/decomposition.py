"""The M-steps of mclust's constrained covariance models (docs/MATH.md, "mclust's models").

mclust writes each covariance as ``Sigma_k = lambda_k D_k A_k D_k^T``: a volume ``lambda_k``
(``|Sigma_k|^(1/d)``), a diagonal shape ``A_k`` with ``|A_k| = 1`` and an orientation ``D_k``
(orthogonal), each Equal across components or Variable (or I, the identity).  Every M-step here
minimises, over the model's set of covariances,

    F = sum_k  c_k log|Sigma_k| + tr(Sigma_k^-1 S_k)

for positive counts ``c_k`` and positive definite "scatters" ``S_k``.  Maximum likelihood is
``c_k = n_k`` and ``S_k = W_k`` (the scatter about the component's mean); the posterior mode under
the families' priors is the same problem with the prior's pseudo-counts added to ``c_k`` and its
scale and the means' shrinkage term added to ``S_k`` (each family says which), so that ``S_k``
is positive definite and so is every covariance returned.  These are the updates of Celeux &
Govaert (1995) with those counts and scatters; the orientation shared by EVE and VVE is the
minorise-maximise step of Browne & McNicholas (2014).

Pure NumPy.  The alternating updates (VEI, VEV, VEE) stop when no parameter changes by more
than ``tol`` relative (or after ``max_iter`` rounds), the rotations of a shared orientation
(EVE, VVE) when no angle and no diagonal entry does (or after ``max_sweeps`` sweeps); each round
does not increase ``F``.
"""

from __future__ import annotations

import numpy as np

#: Relative change (of the parameters, or of ``F``) at which an iterative M-step stops, and its
#: cap on rounds.
TOL = 1e-13
MAX_ITER = 10_000
#: The cap on sweeps of rotations of a shared orientation (EVE, VVE) in one M-step.
ORIENTATION_MAX_SWEEPS = 8


def volume(values: np.ndarray) -> np.ndarray:
    """The geometric mean over the last axis (``|A|^(1/d)`` of a positive diagonal ``A``)."""
    return np.exp(np.mean(np.log(values), axis=-1))


def eigh_descending(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (..., d), largest first, and the eigenvectors as columns (..., d, d)."""
    values, vectors = np.linalg.eigh(S)
    return values[..., ::-1], vectors[..., ::-1]


def _relative_change(old: np.ndarray, new: np.ndarray) -> float:
    return float(np.max(np.abs(new - old) / np.abs(new)))


def _compose(D: np.ndarray, diagonal: np.ndarray) -> np.ndarray:
    """``D diag(a) D^T`` for (K or 1, d, d) orientations and (K, d) diagonals."""
    out = np.einsum("kij,kj,klj->kil", np.broadcast_to(D, (diagonal.shape[0],) + D.shape[-2:]), diagonal,
                    np.broadcast_to(D, (diagonal.shape[0],) + D.shape[-2:]))
    return 0.5 * (out + out.transpose(0, 2, 1))


# -- diagonal models: s (K, d) the diagonals of S_k ------------------------------------------
def equal_diagonal(s: np.ndarray, c: np.ndarray) -> np.ndarray:
    """EEI: one diagonal matrix for every component, ``sum_k s_k / sum_k c_k``."""
    return np.broadcast_to(s.sum(axis=0) / c.sum(), s.shape).copy()


def variable_volume_equal_shape(s: np.ndarray, c: np.ndarray, tol: float = TOL, max_iter: int = MAX_ITER) -> np.ndarray:
    """VEI: ``lambda_k B`` with one diagonal shape ``B`` (``|B| = 1``).

    Alternates ``lambda_k = tr(B^-1 s_k) / (d c_k)`` and ``B ∝ sum_k s_k / lambda_k`` until
    no volume or shape entry changes by more than ``tol`` relative.
    """
    d = s.shape[1]
    B = s.sum(axis=0)
    B = B / volume(B)
    lam = np.sum(s / B, axis=1) / (d * c)
    for _ in range(max_iter):
        B_new = np.sum(s / lam[:, None], axis=0)
        B_new = B_new / volume(B_new)
        lam_new = np.sum(s / B_new, axis=1) / (d * c)
        change = max(_relative_change(B, B_new), _relative_change(lam, lam_new))
        B, lam = B_new, lam_new
        if change <= tol:
            break
    return lam[:, None] * B


def equal_volume_variable_shape(s: np.ndarray, c: np.ndarray) -> np.ndarray:
    """EVI: ``lambda B_k``: ``B_k ∝ s_k`` (``|B_k| = 1``), ``lambda = sum_k |s_k|^(1/d) / sum_k c_k``."""
    vol = volume(s)
    return (vol.sum() / c.sum()) * s / vol[:, None]


# -- matrix models: S (K, d, d) ----------------------------------------------------------
def variable_volume_equal_matrix(S: np.ndarray, c: np.ndarray, tol: float = TOL, max_iter: int = MAX_ITER) -> np.ndarray:
    """VEE: ``lambda_k C`` with one matrix ``C`` (``|C| = 1``).

    Alternates ``lambda_k = tr(C^-1 S_k) / (d c_k)`` and ``C ∝ sum_k S_k / lambda_k`` until no
    volume or entry of ``C`` changes by more than ``tol`` relative (to ``C``'s largest).
    """
    k, d, _ = S.shape
    C = S.sum(axis=0)
    C = C / volume(np.linalg.eigvalsh(C))
    lam = np.einsum("ij,kji->k", np.linalg.inv(C), S) / (d * c)
    for _ in range(max_iter):
        C_new = np.sum(S / lam[:, None, None], axis=0)
        C_new = C_new / volume(np.linalg.eigvalsh(C_new))
        lam_new = np.einsum("ij,kji->k", np.linalg.inv(C_new), S) / (d * c)
        change = max(np.max(np.abs(C_new - C)) / np.max(np.abs(C_new)), _relative_change(lam, lam_new))
        C, lam = C_new, lam_new
        if change <= tol:
            break
    out = lam[:, None, None] * C
    return 0.5 * (out + out.transpose(0, 2, 1))


def equal_volume_variable_matrix(S: np.ndarray, c: np.ndarray) -> np.ndarray:
    """EVV: ``lambda C_k`` (``|C_k| = 1``): ``C_k ∝ S_k``, ``lambda = sum_k |S_k|^(1/d) / sum_k c_k``."""
    vol = volume(np.linalg.eigvalsh(S))
    return (vol.sum() / c.sum()) * S / vol[:, None, None]


def equal_volume_shape_variable_orientation(S: np.ndarray, c: np.ndarray) -> np.ndarray:
    """EEV: ``lambda D_k A D_k^T``: ``D_k`` the eigenvectors of ``S_k`` (largest eigenvalue
    first), ``lambda A = sum_k Omega_k / sum_k c_k`` with ``Omega_k`` the eigenvalues."""
    omega, D = eigh_descending(S)
    shared = omega.sum(axis=0) / c.sum()
    return _compose(D, np.broadcast_to(shared, omega.shape))


def variable_volume_equal_shape_variable_orientation(
    S: np.ndarray, c: np.ndarray, tol: float = TOL, max_iter: int = MAX_ITER
) -> np.ndarray:
    """VEV: ``lambda_k D_k A D_k^T``: ``D_k`` the eigenvectors of ``S_k``; alternates
    ``lambda_k = tr(A^-1 Omega_k) / (d c_k)`` and ``A ∝ sum_k Omega_k / lambda_k``."""
    omega, D = eigh_descending(S)
    lam = variable_volume_equal_shape(omega, c, tol, max_iter)
    return _compose(D, lam)


def _diagonal(a: np.ndarray, c: np.ndarray, equal_volume: bool) -> np.ndarray:
    """The diagonals minimising ``F`` for a fixed orientation, from ``a_k = diag(D^T S_k D)``."""
    if equal_volume:
        vol = volume(a)
        return (vol.sum() / c.sum()) * a / vol[:, None]
    return a / c[:, None]


def _round_robin(d: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every pair of ``d`` axes once, in ``d - 1`` (``d`` odd: ``d``) rounds of disjoint pairs
    (the circle method)."""
    m = d + d % 2
    players = list(range(m))
    rounds = []
    for _ in range(m - 1):
        pairs = [(players[i], players[m - 1 - i]) for i in range(m // 2)]
        pairs = [(min(a, b), max(a, b)) for a, b in pairs if a < d and b < d]
        if pairs:
            rounds.append((np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])))
        players = [players[0], players[-1], *players[1:-1]]
    return rounds


def _jacobi_sweep(M: np.ndarray, D: np.ndarray, c: np.ndarray, equal_volume: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """One sweep of plane rotations over every pair of axes, a round of disjoint pairs at a
    time: in each round every pair's angle is the exact minimiser of ``sum_k tr(M_k diag_k^-1)``
    in its plane for the current diagonals (disjoint pairs do not interact, so the round
    minimises it over all of them at once), and the diagonals are re-estimated after it.
    Returns the new ``M_k = D^T S_k D``, ``D`` and the largest angle."""
    d = D.shape[0]
    largest = 0.0
    for rows, cols in _round_robin(d):
        weights = 1.0 / _diagonal(np.diagonal(M, axis1=1, axis2=2), c, equal_volume)
        w = weights[:, rows] - weights[:, cols]
        a = 0.5 * np.sum(w * (M[:, rows, rows] - M[:, cols, cols]), axis=0)
        b = np.sum(w * M[:, rows, cols], axis=0)
        theta = 0.5 * np.arctan2(-b, -a)
        theta[(a == 0.0) & (b == 0.0)] = 0.0
        largest = max(largest, float(np.max(np.abs(theta))))
        G = np.eye(d)
        cs, sn = np.cos(theta), np.sin(theta)
        G[rows, rows], G[cols, cols], G[cols, rows], G[rows, cols] = cs, cs, sn, -sn
        M = np.matmul(np.matmul(G.T, M), G)
        D = D @ G
    return 0.5 * (M + M.transpose(0, 2, 1)), D, largest


def common_orientation(
    S: np.ndarray,
    c: np.ndarray,
    equal_volume: bool,
    start: np.ndarray | None = None,
    tol: float = TOL,
    max_sweeps: int | None = None,
) -> np.ndarray:
    """EVE (``equal_volume``) and VVE: ``lambda(_k) D A_k D^T`` with one orientation ``D``.

    Starts from the eigenvectors of ``start`` (the current covariances, (K, d, d): EM's last
    estimate, so that each M-step continues where the last one stopped) weighted by
    component, else of ``sum_k S_k / c_k``; then sweeps of plane (Jacobi) rotations of ``D``,
    each the exact minimiser of ``F`` in its plane for the diagonals given ``D`` (``a_k =
    diag(D^T S_k D)``: VVE ``a_k / c_k``; EVE ``lambda a_k / |a_k|^(1/d)`` with ``lambda = sum_k
    |a_k|^(1/d) / sum_k c_k``), re-estimated after every rotation -- the coordinate descent of
    Flury & Gautschi's common-principal-components algorithm with the model's diagonals --
    until no angle exceeds ``tol`` and no diagonal entry changes by more than ``tol`` relative,
    or ``max_sweeps`` sweeps (default :data:`ORIENTATION_MAX_SWEEPS`, read when called; ``F``
    has then still decreased from the start: a generalised EM step, which the next M-step
    continues).
    """
    max_sweeps = ORIENTATION_MAX_SWEEPS if max_sweeps is None else max_sweeps
    k, d, _ = S.shape
    if start is not None and start.shape == S.shape:
        weight = np.arange(1.0, k + 1.0) / np.trace(start, axis1=1, axis2=2)
        _, D = eigh_descending(np.einsum("k,kij->ij", weight, start))
    else:
        _, D = eigh_descending(np.sum(S / c[:, None, None], axis=0))
    D = np.ascontiguousarray(D)
    M = np.einsum("ji,kjl,lm->kim", D, S, D)
    diagonal = _diagonal(np.diagonal(M, axis1=1, axis2=2), c, equal_volume)
    for _ in range(max_sweeps):
        M, D, angle = _jacobi_sweep(M, D, c, equal_volume)
        new = _diagonal(np.diagonal(M, axis1=1, axis2=2), c, equal_volume)
        change = _relative_change(diagonal, new)
        diagonal = new
        if angle <= tol and change <= tol:
            break
    return _compose(D[None], diagonal)
