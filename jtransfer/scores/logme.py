"""LogME (You et al. 2021): per-sample log marginal evidence of Bayesian ridge regression. ↑

For every one-hot label column y (present classes only) the model y = F w + ε with prior
w ~ N(0, α⁻¹ I_D) and noise ε ~ N(0, β⁻¹ I_N) (no bias, F not centred) has the evidence

  L = D/2 log α + N/2 log β − ½ Σ_{j=1..D} log(α + β σ_j) − β/2 res2 − α/2 m2 − N/2 log 2π,

divided by N, with σ_j the eigenvalues of FᵀF, m = β A⁻¹ Fᵀ y the posterior mean (m2 = ‖m‖²)
and res2 = ‖y − F m‖². The score is the mean of L over the columns. In the eigenbasis of the
N×N Gram F Fᵀ (eigenvalues σ, x = Uᵀ y, t = α/β): γ = Σ σ/(σ+t), m2 = Σ σ x²/(σ+t)²,
res2 = Σ x² t²/(σ+t)² (components with σ = 0 give x²).

F Fᵀ is never formed nor decomposed. F = Z + 1 νᵀ with Z the centred features (1ᵀZ = 0) and ν
the mean (both in units of `Shared.scale`), so F Fᵀ = Z Zᵀ + a 1ᵀ + 1 aᵀ + ‖ν‖² 1 1ᵀ, a = Z ν:
in the basis (1/√N, eigenvectors of Z Zᵀ) an arrowhead matrix. Every quantity above is a
function of (F Fᵀ + tI)⁻¹ and det(F Fᵀ + tI), which the Schur complement on 1/√N gives from the
centred Gram's eigendecomposition (`Shared.centered_gram_eigh`, shared with H-score, TransRate,
GBC) plus O(N·C) work per t (`_resolvent`); σ_max is the top root of the secular equation.
So the fused pass does one eigh, and the mean's ‖ν‖², which dominates F Fᵀ for post-ReLU
channels with large means or any large offset, enters only as ‖ν_⊥‖² = ‖ν‖² − Σ b²/λ (the part
of ν off the row space of Z) and never cancels against the small eigenvalues the evidence's
optimum depends on: those are resolved relative to the centred spectrum's λ_max, not to σ_max.

Correct for N < D (the published code is not): the log-det sum runs over all D eigenvalues of
FᵀF, i.e. the min(N, D) from the Gram plus D − min(N, D) zeros, each contributing log α. Only
then is the score invariant to a global rescaling of F.

Schedules:
- "converged" (default): the evidence at its maximum over (α, β). MacKay's fixed point
  α = γ/m2, β = (N − γ)/res2 is its stationarity condition, but iterating it can crawl or
  diverge to α = ∞ (no linear signal), both common when N < D. So β is profiled out in closed
  form and the 1-D profile in log t is searched directly (`_converged`): its global maximum,
  possibly the t = ∞ limit. Exactly scale invariant; equal to the converged fixed point wherever
  that converges to the highest maximum. Degenerate data (rank(F) < N with y in range(F):
  duplicate rows with equal labels or all-zero rows when N ≤ D) has unbounded evidence; see
  `_converged`.
- "thuml": the published 11-iteration schedule, exactly as REFERENCE.md spells it: α = β = 1,
  α = γ/(m2 + 1e-5), β = (N − γ)/(res2 + 1e-5), stop when |t_new − t|/t ≤ 1e-3; the evidence uses
  the updated α, β with that last iteration's m2, res2 (and, unlike the published code, the full
  D-term log-det).

Invariant to: a global scale a > 0 ("converged"; "thuml" only approximately: its 1e-5
constants are absolute). Not to a common shift (no bias term): float32 agrees with float64 on the
shifted features. float32 accuracy (benchmarks/scores_float32.py) and cost: BENCHMARKS.md.

Covariance route (many samples, `Shared.route`): the eigenbasis spans range(Z) only (D
vectors); its complement has λ = 0 and b = 0 and enters every sum through ‖p‖² alone, so one
extra component carries it (`_spectrum`).

Classes without samples are skipped (the public functions reject them anyway).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import HIGHEST, Shared

SCHEDULES = ("converged", "thuml")
MIN_PER_CLASS = 1
# Grid for the converged evidence: POINTS values of t = α/β, evenly in log t, from λ_max·10^LO
# (λ_max the centred Gram's largest eigenvalue; smaller eigenvalues are round-off: LO is −12 in
# float64, −6 in float32) to σ_max·10^HI (σ_max the largest of F Fᵀ, ≥ λ_max).
_GRID_LO_F64, _GRID_LO_F32, _GRID_HI, _GRID_POINTS = -12.0, -6.0, 4.0, 121
_GOLDEN_ITERS = 48  # bracket of 2 grid steps shrinks by 0.618⁴⁸ ≈ 1e-10
_TOP_ITERS = 80  # bisection for σ_max: the bracket shrinks by 2⁻⁸⁰
_THUML_ITERS = 11
_THUML_EPS = 1e-5
_THUML_TOL = 1e-3


def _dot(a, b):
  return jnp.matmul(a, b, precision=HIGHEST)


class _Spectrum(NamedTuple):
  """F Fᵀ as the centred Gram plus the mean, in the centred Gram's eigenbasis (units of `scale`).

  F = Z + 1 νᵀ with Z centred (1ᵀZ = 0) gives F Fᵀ = Z Zᵀ + a 1ᵀ + 1 aᵀ + ‖ν‖² 1 1ᵀ, a = Z ν. In
  the basis (e = 1/√N, eigenvectors V of Z Zᵀ) it is an arrowhead: N‖ν‖² on e, λ on the
  diagonal, coupling √N b, b = Vᵀ a. Each column y enters as y0 = eᵀ y and p = Vᵀ(y − ȳ 1).
  """

  lam: jax.Array  # [N, 1] eigenvalues of Z Zᵀ, ascending; round-off ones (≤ eps·λ_max) set to 0
  b: jax.Array  # [N, 1] Vᵀ Z ν, 0 where λ = 0 (a = Z ν lies in range(Z))
  inv_lam: jax.Array  # [N, 1] 1/λ, 0 where λ = 0
  k: jax.Array  # ‖ν‖² − Σ b²/λ = ‖ν_⊥‖²: the part of the mean off the row space of Z
  p: jax.Array  # [N, C] Vᵀ(y − ȳ 1)
  y0: jax.Array  # [C] eᵀ y
  n: int
  p2: jax.Array  # [N, C] p², precomputed for the ~130 profile evaluations
  bp: jax.Array  # [N, C] b p
  b2_lam: jax.Array  # [N, 1] b²/λ (0 where λ = 0)


def _spectrum(shared: Shared, onehot: jax.Array) -> _Spectrum:
  n = shared.n
  rank = min(n - 1, shared.d)  # rank of the centred Gram: the rest of its eigenvalues are 0
  lam, v = shared.centered_gram_eigh
  r = lam.shape[0]
  lam = lam[:, None]
  # Eigenvalues below eps·λ_max are round-off (also for rank-deficient data, e.g. duplicates):
  # exact zeros make the degenerate cases independent of round-off.
  resolved = (jnp.arange(r) >= r - rank)[:, None] & (lam > jnp.finfo(lam.dtype).eps * lam[-1])
  lam = jnp.where(resolved, lam, 0)
  nu = shared.mean / shared.scale
  b = jnp.where(resolved, _dot(v.T, _dot(shared.normalized, nu))[:, None], 0)
  centred_y = onehot - jnp.mean(onehot, axis=0)
  p = _dot(v.T, centred_y)
  if r < n:
    # Covariance route: V spans range(Z) only. Its complement (λ = 0, b = 0) enters every sum
    # through ‖p‖² alone, so one component (first: λ stays ascending) carries all of it.
    rest = jnp.sum(centred_y**2, axis=0) - jnp.sum(p**2, axis=0)
    p = jnp.concatenate([jnp.sqrt(jnp.maximum(rest, 0))[None], p])
    lam, b = (jnp.concatenate([jnp.zeros((1, 1), lam.dtype), a]) for a in (lam, b))
  inv_lam = jnp.where(lam > 0, 1 / jnp.where(lam > 0, lam, 1), 0)
  k = jnp.sum(nu * nu) - jnp.sum(b * b * inv_lam)
  y0 = jnp.sum(onehot, axis=0) / math.sqrt(n)
  return _Spectrum(lam, b, inv_lam, k, p, y0, n, p**2, b * p, b * b * inv_lam)


def _top(sp: _Spectrum) -> jax.Array:
  """The largest eigenvalue of F Fᵀ: the root above max(λ, N‖ν‖²) of the secular equation
  N‖ν‖² − σ + N Σ b²/(σ − λ) = 0 (decreasing there), by bisection."""
  n, lam, b2 = sp.n, sp.lam[:, 0], sp.b[:, 0] ** 2
  mean2 = sp.k + jnp.sum(sp.b2_lam)
  lo = jnp.maximum(lam[-1], n * mean2)
  hi = lo + math.sqrt(n) * jnp.sqrt(jnp.sum(b2))
  tiny = jnp.finfo(lam.dtype).tiny

  def body(_, bounds):
    lo, hi = bounds
    mid = lo + (hi - lo) / 2
    up = n * mean2 - mid + n * jnp.sum(b2 / jnp.maximum(mid - lam, tiny)) > 0
    return jnp.where(up, mid, lo), jnp.where(up, hi, mid)

  return jax.lax.fori_loop(0, _TOP_ITERS, body, (lo, hi))[1]


def _resolvent(t, sp: _Spectrum):
  """Pieces of (F Fᵀ + t I)⁻¹ at t [C] by the arrowhead's Schur complement on e.

  Returns h = Σ p²/(λ+t), φ = y0 − √N Σ b p/(λ+t), r = N R/t with R = ‖ν‖² − Σ b²/(λ+t) ≥ 0
  (the Schur complement is t(1 + r)), and 1/(λ+t) [N, C]. R is written as k + Σ b² t/(λ(λ+t))
  so the large ‖ν‖² never cancels against Σ b²/(λ+t): this is what keeps float32 accurate when
  the mean dominates F Fᵀ.
  """
  inv = 1 / (sp.lam + t)
  h = jnp.sum(sp.p2 * inv, axis=0)
  phi = sp.y0 - math.sqrt(sp.n) * jnp.sum(sp.bp * inv, axis=0)
  big_r = sp.k + t * jnp.sum(sp.b2_lam * inv, axis=0)
  return h, phi, sp.n * jnp.maximum(big_r, 0) / t, inv


def _logdet(t, sp: _Spectrum, r):
  """Σ log(1 + σ/t) over the N eigenvalues σ of F Fᵀ: det(F Fᵀ + tI) = det(Z Zᵀ + tI)(1 + r)."""
  return jnp.sum(jnp.log1p(sp.lam / t), axis=0) + jnp.log1p(r)


def _profile(log_t, sp: _Spectrum):
  """Per-sample log evidence [C] maximised over β at t = α/β = exp(log_t) [C].

  With α = tβ the D-term log-det splits as D log β + Σ_D log(t + σ_j), the D/2 log α and
  (padded) zero eigenvalues cancel, and the β-optimum is β = N/E(t), E = res2 + t·m2 =
  t yᵀ(F Fᵀ + tI)⁻¹ y = t h + φ²/(1 + r). What is left:
  ½ log(N/E) − (1/2N) Σ_i log(1 + σ_i/t) − ½ − ½ log 2π.
  """
  n, t = sp.n, jnp.exp(log_t)
  h, phi, r, _ = _resolvent(t, sp)
  energy = t * h + phi**2 / (1 + r)
  return 0.5 * jnp.log(n / energy) - _logdet(t, sp, r) / (2 * n) - 0.5 * (1 + math.log(2 * math.pi))


def _converged(sp: _Spectrum):
  """The converged evidence of every column: per-sample log evidence [C].

  MacKay's fixed point is the stationarity condition of `_profile` in s = log t, but iterating
  it can crawl (where the evidence is flat in t) or run off to t = ∞ (no linear signal: the
  evidence is highest at w = 0). So the profile is evaluated on a grid of t (relative to the
  spectrum, hence scale invariant; see `_GRID_POINTS`) plus the t = ∞ limit
  ½ log(N/‖y‖²) − ½ − ½ log 2π, and the best grid point is refined by golden-section search: the
  global maximum. This is the converged fixed point wherever that converges to the highest
  maximum. The profile can have several local maxima: when the common mean dominates F Fᵀ
  (post-ReLU channels with large means, any large offset) a shallow one at t ≈ σ_max fits only
  the mean direction, far below the maximum at the centred spectrum's scale (−0.47 vs 0.52 on a
  test case; on tests/scores_probes.py's ReLU probe 0.418 vs 0.573, on its embedding −0.449 vs
  0.043); the published schedule ("thuml") and a numerical maximisation over (α, β) find the
  latter.

  Degenerate case: when rank(F) < N and y lies in range(F) (exact duplicate rows with equal
  labels, or all-zero rows, with N ≤ D) the evidence grows without bound as t → 0 (β → ∞:
  noise-free interpolation); then the value at the floor is returned (documented, not a
  maximum): t = 1e-12·λ_max in float64, 1e-6·λ_max in float32, λ_max the largest eigenvalue of
  the centred Gram (smaller ones are round-off). Where the evidence tends to a finite limit as
  t → 0 (N ≤ D, y in range(F) through the mean) the floor value is that limit to ≈ 1e-5
  relative in float32 (1.5e-5 on the spectral tests' N = 40 < D = 90 case at offsets 0..1e4).
  """
  n, c = sp.n, sp.p.shape[1]
  dtype = sp.p.dtype
  top = jnp.maximum(_top(sp), jnp.finfo(dtype).tiny)
  lam_max = jnp.where(sp.lam[-1, 0] > 0, sp.lam[-1, 0], top)  # all samples equal: λ = 0
  lo_decades = _GRID_LO_F64 if jnp.finfo(dtype).bits >= 64 else _GRID_LO_F32
  floor = jnp.log(lam_max) + math.log(10) * lo_decades
  step = (jnp.log(top) + math.log(10) * _GRID_HI - floor) / (_GRID_POINTS - 1)
  grid = (floor + step * jnp.arange(_GRID_POINTS, dtype=dtype)).astype(dtype)
  values = jax.lax.map(lambda s: _profile(jnp.full((c,), s), sp), grid)
  at_infinity = 0.5 * jnp.log(n / (jnp.sum(sp.p2, axis=0) + sp.y0**2)) - 0.5 * (
    1 + math.log(2 * math.pi)
  )
  w = jnp.concatenate([values, at_infinity[None]], axis=0)  # [G + 1, C]
  stop = jnp.argmax(w, axis=0)  # [C] (ties: the lowest index, i.e. smallest t)
  centre = jnp.concatenate([grid, grid[-1:] + step])[stop]
  a, b = jnp.maximum(centre - step, floor), centre + step

  f = lambda s: _profile(s, sp)
  inv_phi = (math.sqrt(5) - 1) / 2

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


def _thuml_stats(t, sp: _Spectrum):
  """γ = Σ σ/(σ+t), m2 = Σ σ x²/(σ+t)², res2 = Σ x² t²/(σ+t)² [C] at t [C] (σ, x: the
  eigenvalues of F Fᵀ and y's coordinates in its eigenbasis), and the profile's r.

  With u = (F Fᵀ + tI)⁻¹ y: res2 = t²‖u‖², m2 = uᵀ F Fᵀ u, γ = N − t tr((F Fᵀ + tI)⁻¹); each is
  written as a sum of non-negative terms (the mean's ‖ν‖² enters only through k ≥ 0).
  """
  n, rn = sp.n, math.sqrt(sp.n)
  _, phi, r, inv = _resolvent(t, sp)
  # γ: the centred part plus the Schur complement's share N (R − t ∂R/∂t)/(t (1 + r)), with
  # R − t ∂R/∂t = k + t² Σ b²/(λ (λ+t)²)
  big_r2 = sp.k + t**2 * jnp.sum(sp.b2_lam * inv**2, axis=0)
  gamma = jnp.sum(sp.lam * inv, axis=0) + n * jnp.maximum(big_r2, 0) / (t * (1 + r))
  u0 = phi / (t * (1 + r))  # u's coordinate on e
  u = (sp.p - rn * sp.b * u0) * inv  # [N, C] its coordinates on V
  res2 = t**2 * (u0**2 + jnp.sum(u**2, axis=0))
  # uᵀ F Fᵀ u = Σ λ u² + 2√N u0 Σ b u + N ‖ν‖² u0² = Σ (√λ u + √N u0 b/√λ)² + N k u0²
  per = (jnp.sqrt(sp.lam) * u + rn * u0 * sp.b * jnp.sqrt(sp.inv_lam)) ** 2
  m2 = jnp.sum(per, axis=0) + n * jnp.maximum(sp.k, 0) * u0**2
  return gamma, m2, res2, r


def _thuml(sp: _Spectrum, scale):
  """The published schedule: ≤ 11 iterations, each column stopping on its own, in the units of
  F (its 1e-5 constants are absolute): σ_F = scale² σ, t_F = scale² t, m2_F = m2/scale²."""
  n, c = sp.n, sp.p.shape[1]
  one = jnp.ones((c,), sp.p.dtype)
  to_f = lambda m2: m2 / scale / scale

  def body(_, state):
    alpha, beta, m2, res2, done = state
    t = alpha / beta
    gamma, m2_new, res2_new, _ = _thuml_stats(t / scale / scale, sp)
    m2_new = to_f(m2_new)
    alpha_new = gamma / (m2_new + _THUML_EPS)
    beta_new = (n - gamma) / (res2_new + _THUML_EPS)
    stop = jnp.abs(alpha_new / beta_new - t) / t <= _THUML_TOL
    keep = lambda old, new: jnp.where(done, old, new)
    out = (keep(alpha, alpha_new), keep(beta, beta_new), keep(m2, m2_new), keep(res2, res2_new))
    return (*out, done | stop)

  init = (one, one, one, one, jnp.zeros((c,), bool))
  alpha, beta, m2, res2, _ = jax.lax.fori_loop(0, _THUML_ITERS, body, init)
  return alpha, beta, m2, res2


def _evidence(alpha, beta, m2, res2, logdet_ratio, n, d):
  """Per-sample log evidence [C]. The D-term log-det Σ_D log(α + βσ_j) is D log α plus
  `logdet_ratio` = Σ_N log(1 + σ_i β/α) (the D − N padded zero eigenvalues give log α each)."""
  ev = (
    d / 2 * jnp.log(alpha)
    + n / 2 * jnp.log(beta)
    - 0.5 * (d * jnp.log(alpha) + logdet_ratio)
    - beta / 2 * res2
    - alpha / 2 * m2
    - n / 2 * math.log(2 * math.pi)
  )
  return ev / n


def logme_kernel(shared: Shared, *, schedule: str = "converged") -> jax.Array:
  """LogME from the shared centred Gram eigendecomposition (pure, traceable, vmappable)."""
  if schedule not in SCHEDULES:
    raise ValueError(f"unknown LogME schedule {schedule!r}; valid: {SCHEDULES}")
  present = shared.counts > 0
  # An empty class has y = 0 (zero energy): give it a harmless dummy column, masked out below.
  onehot = jnp.where(present, shared.onehot, 1.0)
  sp = _spectrum(shared, onehot)
  if schedule == "converged":
    ev = _converged(sp)
  else:
    scale = shared.scale
    alpha, beta, m2, res2 = _thuml(sp, scale)
    t = alpha / beta / scale / scale
    _, _, r, _ = _resolvent(t, sp)
    ev = _evidence(alpha, beta, m2, res2, _logdet(t, sp, r), shared.n, shared.d)
  return jnp.sum(jnp.where(present, ev, 0)) / jnp.sum(present)


def logme(features, labels, *, num_classes: int, schedule: str = "converged") -> jax.Array:
  """LogME of `features` [N, D] for `labels` [N] (mean per-sample log evidence over classes)."""
  return score_one("logme", features, labels, num_classes=num_classes, schedule=schedule)
