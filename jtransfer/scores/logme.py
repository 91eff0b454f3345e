"""LogME (You et al. 2021): per-sample log marginal evidence of Bayesian ridge regression. ↑

For every one-hot label column y (present classes only) the model y = F w + ε with prior
w ~ N(0, α⁻¹ I_D) and noise ε ~ N(0, β⁻¹ I_N) (no bias, F not centred) has the evidence

  L = D/2 log α + N/2 log β − ½ Σ_{j=1..D} log(α + β σ_j) − β/2 res2 − α/2 m2 − N/2 log 2π,

divided by N, with σ_j the eigenvalues of FᵀF, m = β A⁻¹ Fᵀ y the posterior mean (m2 = ‖m‖²)
and res2 = ‖y − F m‖². The score is the mean of L over the columns. Everything is done in the
eigenbasis of the N×N Gram F Fᵀ (`Shared.gram_eigh`): with x = Uᵀ y and t = α/β,
γ = Σ σ/(σ+t), m2 = Σ σ x²/(σ+t)², res2 = Σ x² t²/(σ+t)² (components with σ = 0 give x²).

Correct for N < D (the published code is not): the log-det sum runs over all D eigenvalues of
FᵀF, i.e. the min(N, D) from the Gram plus D − min(N, D) zeros, each contributing log α. Only
then is the score invariant to a global rescaling of F.

Schedules:
- "converged" (default): the evidence at its maximum over (α, β). MacKay's fixed point
  α = γ/m2, β = (N − γ)/res2 is its stationarity condition, but iterating it can crawl or
  diverge to α = ∞ (no linear signal), both common when N < D. So β is profiled out in closed
  form and the 1-D profile in log t is searched directly (`_converged`): the local maximum with
  the largest t, or the t = ∞ limit. Exactly scale invariant; equal to the converged fixed point
  wherever that converges. Degenerate data (rank(F) < N with y in range(F): duplicate rows with
  equal labels or all-zero rows when N ≤ D) has unbounded evidence; see `_converged`.
- "thuml": the published 11-iteration schedule, exactly as REFERENCE.md spells it: α = β = 1,
  α = γ/(m2 + 1e-5), β = (N − γ)/(res2 + 1e-5), stop when |t_new − t|/t ≤ 1e-3; the evidence uses
  the updated α, β with that last iteration's m2, res2 (and, unlike the published code, the full
  D-term log-det).

Invariant to: a global scale a > 0 ("converged"; "thuml" only approximately: its 1e-5
constants are absolute). Not to a common shift (no bias term): float32 agrees with float64 on the
shifted features, except where the optimum needs eigenvalues of F Fᵀ below ≈ 1e-6·σ_max, which
float32's eigh does not resolve. Features whose common mean dominates (post-ReLU channels with
large means: σ_max/σ_2 ≈ 4e3 in tests/scores_float32_test.py, KNOWN) put the optimum of some
columns just below float32's floor t = 1e-6·σ_max, and their evidence has plateaus whose tiny
local maxima float64 resolves and float32 does not; there float32 can differ by O(0.1). A fix
needs the eigenvalues with the mean direction deflated (a rank-one update of the centred Gram's
eigendecomposition), not done yet.

Classes without samples are skipped (the public functions reject them anyway).

float32 vs float64 (C = 10): relative error 1.7e-5 (converged) / 1.8e-5 (thuml) for N = 500,
D = 1600 ReLU features of MNIST (random projection; values ≈ −0.046, so ≈ 8e-7 absolute);
1.4e-5 / 1.4e-5 for 500 MNIST pixel images (50/class); 2.8e-7 / 9.3e-7 for N = 1000 > D = 128.
Cost beyond the shared Gram eigendecomposition at N = 1000, C = 10: ≈ 3 ms (the N×N×C
projection and ~130 profile evaluations of O(N·C)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import HIGHEST, Shared

SCHEDULES = ("converged", "thuml")
MIN_PER_CLASS = 1
# Grid for the converged evidence: t = α/β from σ_max·10^LO to σ_max·10^HI in STEP decades. LO is
# the floor on t: eigenvalues below ~eps·σ_max are round-off, and the profile must not be followed
# into them (see `_converged`). Real probes have their optimum near t ≈ 1e-3·σ_max.
_GRID_LO_F64, _GRID_LO_F32, _GRID_HI, _GRID_STEP = -12.0, -6.0, 4.0, 0.2
_GOLDEN_ITERS = 48  # bracket of 2 grid steps shrinks by 0.618⁴⁸ ≈ 1e-10
_WALK_TOL_EPS = 1000  # evidence differences below 1000·eps·(1 + |L|) count as flat
_THUML_ITERS = 11
_THUML_EPS = 1e-5
_THUML_TOL = 1e-3


def _stats(t, sigma, x2):
  """γ [C], m2 [C], res2 [C] at t = α/β [C] for eigenvalues σ [N, 1], projections x² [N, C]."""
  denom = sigma + t
  gamma = jnp.sum(sigma / denom, axis=0)
  m2 = jnp.sum(sigma * x2 / denom**2, axis=0)
  res2 = jnp.sum(x2 * (t / denom) ** 2, axis=0)
  return gamma, m2, res2


def _evidence(alpha, beta, m2, res2, sigma, n, d):
  """Per-sample log evidence [C]. σ [N, 1] holds the min(N, D) eigenvalues of FᵀF and N − k
  exact zeros; a zero gives log α, so adding (D − N) log α makes the sum run over all D."""
  logdet = jnp.sum(jnp.log(alpha + beta * sigma), axis=0) + (d - n) * jnp.log(alpha)
  ev = (
    d / 2 * jnp.log(alpha)
    + n / 2 * jnp.log(beta)
    - 0.5 * logdet
    - beta / 2 * res2
    - alpha / 2 * m2
    - n / 2 * np.log(2 * np.pi)
  )
  return ev / n


def _profile(log_t, sigma, x2, n):
  """Per-sample log evidence [C] maximised over β at t = α/β = exp(log_t) [C].

  With α = tβ the D-term log-det splits as D log β + Σ_D log(t + σ_j), the D/2 log α and
  (padded) zero eigenvalues cancel, and the β-optimum is β = N/E(t), E = res2 + t·m2 =
  Σ x² t/(t+σ). What is left: ½ log(N/E) − (1/2N) Σ_i log(1 + σ_i/t) − ½ − ½ log 2π.
  """
  ratio = sigma / jnp.exp(log_t)
  energy = jnp.sum(x2 / (1 + ratio), axis=0)
  return (
    0.5 * jnp.log(n / energy)
    - jnp.sum(jnp.log1p(ratio), axis=0) / (2 * n)
    - 0.5 * (1 + np.log(2 * np.pi))
  )


def _converged(sigma, x2, n):
  """The converged evidence of every column: per-sample log evidence [C].

  MacKay's fixed point is the stationarity condition of `_profile` in s = log t, but iterating
  it can crawl (where the evidence is flat in t) or run off to t = ∞ (no linear signal: the
  evidence is highest at w = 0). So the profile is evaluated on a grid of t (relative to σ_max,
  hence scale invariant) plus the t = ∞ limit ½ log(N/‖y‖²) − ½ − ½ log 2π; starting at t = ∞ we
  walk down in t until the evidence drops by more than round-off, and refine the best point of
  the walked stretch by golden-section search: the local maximum with the largest t (plateaus
  flat to working precision do not stop the walk). This is the converged fixed point wherever
  that converges (unique maximum).

  Degenerate case: when rank(F) < N and y lies in range(F) (exact duplicate rows with equal
  labels, or all-zero rows, with N ≤ D) the evidence grows without bound as t → 0 (β → ∞:
  noise-free interpolation), and any fixed point there is made by round-off. The walk from t = ∞
  stops behind the first genuine local maximum; if there is none, the value at the floor
  t = σ_max·10^LO is returned (documented, not a maximum; LO is −12 in float64, −6 in float32).
  """
  top = sigma[-1, 0]
  log_top = jnp.log(jnp.where(top > 0, top, 1))
  lo = _GRID_LO_F64 if jnp.finfo(x2.dtype).bits >= 64 else _GRID_LO_F32
  grid = log_top + np.log(10) * jnp.arange(lo, _GRID_HI + _GRID_STEP / 2, _GRID_STEP)
  grid = grid.astype(x2.dtype)
  values = jax.lax.map(lambda s: _profile(jnp.full(x2.shape[1:], s), sigma, x2, n), grid)
  at_infinity = 0.5 * jnp.log(n / jnp.sum(x2, axis=0)) - 0.5 * (1 + np.log(2 * np.pi))
  # Walk down from t = ∞ until the evidence drops by more than round-off (`tol`: plateaus at
  # large t are flat to working precision), then take the best point of the walked stretch.
  w = jnp.concatenate([values, at_infinity[None]], axis=0)  # [G + 1, C]
  tol = _WALK_TOL_EPS * jnp.finfo(x2.dtype).eps * (1 + jnp.abs(w[1:]))
  drop = w[:-1] < w[1:] - tol  # [G, C]: row j: stepping from j + 1 down to j loses evidence
  idx = jnp.arange(1, w.shape[0])[:, None]
  first = jnp.max(jnp.where(drop, idx, 0), axis=0)  # [C]: the walk stops at this index
  walked = jnp.where(jnp.arange(w.shape[0])[:, None] >= first, w, -jnp.inf)
  stop = jnp.argmax(walked, axis=0)  # [C] (ties: the lowest index, i.e. smallest t)
  step = np.log(10) * _GRID_STEP
  centre = jnp.concatenate([grid, grid[-1:] + step])[stop]
  a, b = centre - step, centre + step

  f = lambda s: _profile(s, sigma, x2, n)
  inv_phi = (np.sqrt(5) - 1) / 2

  def golden(_, state):
    a, b, c, d, fc, fd, top = state
    left = fc >= fd  # the maximum lies in [a, d]
    a, b = jnp.where(left, a, c), jnp.where(left, d, b)
    c_new, d_new = b - inv_phi * (b - a), a + inv_phi * (b - a)
    f_new = f(jnp.where(left, c_new, d_new))
    c, d = jnp.where(left, c_new, d), jnp.where(left, c, d_new)
    fc, fd = jnp.where(left, f_new, fd), jnp.where(left, fc, f_new)
    return a, b, c, d, fc, fd, jnp.maximum(top, f_new)

  c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
  fc, fd = f(c), f(d)
  start = jnp.take_along_axis(w, stop[None], axis=0)[0]
  init = (a, b, c, d, fc, fd, jnp.maximum(start, jnp.maximum(fc, fd)))
  refined = jax.lax.fori_loop(0, _GOLDEN_ITERS, golden, init)[-1]
  return jnp.where(stop == w.shape[0] - 1, at_infinity, refined)


def _thuml(sigma, x2, n):
  """The published schedule: ≤ 11 iterations, each column stopping on its own."""
  c = x2.shape[1]
  one = jnp.ones((c,), x2.dtype)

  def body(_, state):
    alpha, beta, m2, res2, done = state
    t = alpha / beta
    gamma, m2_new, res2_new = _stats(t, sigma, x2)
    alpha_new = gamma / (m2_new + _THUML_EPS)
    beta_new = (n - gamma) / (res2_new + _THUML_EPS)
    stop = jnp.abs(alpha_new / beta_new - t) / t <= _THUML_TOL
    keep = lambda old, new: jnp.where(done, old, new)
    out = (keep(alpha, alpha_new), keep(beta, beta_new), keep(m2, m2_new), keep(res2, res2_new))
    return (*out, done | stop)

  init = (one, one, one, one, jnp.zeros((c,), bool))
  alpha, beta, m2, res2, _ = jax.lax.fori_loop(0, _THUML_ITERS, body, init)
  return alpha, beta, m2, res2


def logme_kernel(shared: Shared, *, schedule: str = "converged") -> jax.Array:
  """LogME from the shared Gram eigendecomposition (pure, traceable, vmappable)."""
  if schedule not in SCHEDULES:
    raise ValueError(f"unknown LogME schedule {schedule!r}; valid: {SCHEDULES}")
  n, d = shared.n, shared.d
  k = min(n, d)  # FᵀF and F Fᵀ share min(N, D) eigenvalues; the rest of F Fᵀ's are zero
  sigma, u = shared.gram_eigh
  sigma = jnp.where(jnp.arange(n) >= n - k, sigma, 0)[:, None]  # ascending: top k are last
  x2 = jnp.matmul(u.T, shared.onehot, precision=HIGHEST) ** 2  # [N, C]
  present = shared.counts > 0
  # An empty class has x = 0 (m2 = 0): give it a harmless dummy column, masked out below.
  x2 = jnp.where(present, x2, 1.0)
  if schedule == "converged":
    ev = _converged(sigma, x2, n)
  else:
    sigma = sigma * shared.gram_scale**2  # its 1e-5 constants make it scale-dependent
    ev = _evidence(*_thuml(sigma, x2, n), sigma, n, d)
  return jnp.sum(jnp.where(present, ev, 0)) / jnp.sum(present)


def logme(features, labels, *, num_classes: int, schedule: str = "converged") -> jax.Array:
  """LogME of `features` [N, D] for `labels` [N] (mean per-sample log evidence over classes)."""
  return score_one("logme", features, labels, num_classes=num_classes, schedule=schedule)
