"""SFDA, self-challenging Fisher discriminant analysis (Shao et al., ECCV 2022). ↑, in (0, 1].

Definition (TencentARC/SFDA `metrics.py`, `SFDA_Score`, read for this module): with priors
π_c = n_c/N, class means μ_c and the within-class scatter S_W = Σ_c π_c Cov_c (ddof 0)
= (1/N) Σ_i (f_i − μ_{y_i})(f_i − μ_{y_i})ᵀ,
1. shrinkage λ = max(exp(−5 σ_max(S_W)), 1e-10), σ_max the largest eigenvalue of S_W, and
   B = (1 − λ) S_W + λ m I, m = tr(S_W)/D;
2. p(c | f_i) = softmax_c(f_iᵀ B⁻¹ μ_c − ½ μ_cᵀ B⁻¹ μ_c + log π_c) — the reference's
   `predict_proba`; equal to softmax_c(−½ (f_i − μ_c)ᵀ B⁻¹ (f_i − μ_c) + log π_c);
3. "self-challenging" ConfMix: q_i = softmax_c(p(c | f_i))[y_i] (a softmax of the
   probabilities: the reference's "soften"), μ̄_{−c} = the unweighted mean of the other classes'
   means, and f̃_i = q_i f_i + (1 − q_i) μ̄_{−y_i};
4. step 2 again on the mixed f̃ (new means and S_W, hence new m, the *same* λ);
   score = (1/N) Σ_i p(y_i | f̃_i).

How it is computed: every quantity is invariant to a common shift, and the vectors involved
(f_i − μ_c, μ_c − μ, the mixed points) all lie in the span of the centred features Z, while B
acts on that span by itself (S_W's range lies in it; B = λ m I off it). So the kernel works in
the coordinates of Z: Z itself when N − 1 ≥ D, else its k = N − 1 PCA coordinates U_k √σ_k
from the shared centred Gram eigendecomposition (coordinates of components at round-off level,
σ ≤ max(N, D)·eps·σ_max, are set to 0) — exact, and no D×D matrix when N < D. In those k
coordinates S_W = RᵀR/N (R the within-class residuals) is eigendecomposed (k×k, once per pass;
eigenvalues ≤ k·eps·their maximum are round-off and set to 0, so the floor λ m is exact there),
and the distances are ‖(f_i − μ_c) E / √ℓ‖² with ℓ = (1 − λ) ω + λ m, formed from differences
(no ‖a‖² + ‖b‖² − 2ab cancellation), one class at a time (N·k memory).
When N − 1 < D the kernel first tries a certificate that the posterior is saturated (below):
from the shared eigenbasis alone (O(N·k·C), no k×k matrix) it bounds every other class's
distance from below and the true class's from above; where that proves p(y_i | x_i) = 1 to far
below round-off for every sample, ConfMix changes nothing (q is constant) and the score is 1,
so both k×k eigendecompositions are skipped (`lax.cond`; a select under vmap).

Pitfalls of the public code, and what jtransfer does:
- The reference writes the mixed features of step 3 into the caller's array (`X[indices] = ...`
  inside `SFDA_Score`), so a second call on the same array scores different features (and an
  integer array would round them). jtransfer never modifies its input (tested).
- The returned quantity is the mean *probability* of the true class, not its log (the
  reference: "the log function is ignored in case of instability"). jtransfer returns that same
  quantity: it is what the released code computes and what produced the published rankings, it
  is bounded in (0, 1], and the mean log-probability would be dominated by the few samples the
  saturated posterior (below) puts at p ≈ 0. There is no log variant.
- The reference solves the generalised eigenproblem (S_B, B) with S_B = shrunk S_T − B and then
  uses coef = M V Vᵀ with *all* D eigenvectors: since Vᵀ B V = I, V Vᵀ = B⁻¹, so S_B (and the
  shrunk total covariance) never enters the score. jtransfer computes the LDA posterior of
  step 2 directly; the tests check it against a transcription of the generalised eigenproblem.
- σ_max: the reference estimates it by three rounds of power iteration started at S_W·1
  (`iterative_A`, returning xᵀ S_W y = ‖S_W y‖ ≤ σ_max: an underestimate, so a larger λ, where the
  top of the spectrum is not well separated), and that start is 0 in exact arithmetic when the
  residuals' coordinates sum to 0 in every sample (features whose rows sum to a constant, e.g.
  probability vectors): the estimate then starts from round-off.
  Default `largest_eigenvalue="exact"`: the exact σ_max (the top eigenvalue of the scatter the
  kernel decomposes anyway). `largest_eigenvalue="power"` reproduces the reference's estimate,
  for comparison with published numbers.
- Not scale invariant: λ = exp(−5 σ_max) reads σ_max in the features' units (post-ReLU features
  of any real network have σ_max ≫ 5, so λ = 1e-10, the floor; features of small scale get λ
  near 1, i.e. a nearest-class-mean classifier). When N − C < D the within-class residuals span
  fewer directions than the centred features, the class means differ along directions where
  B = λ m I, and with λ ≪ 1 the posterior saturates to one-hot: then the score is exactly 1 for
  every model (uninformative, like the H-score's C − 1 when N − 1 ≤ D). Documented, tested.
- The reference builds D×D covariances (and a D×D generalised eigenproblem) whatever N.

Zero within-class scatter (every sample equals its class mean; in floating point: tr S_W ≤
(N·eps)² tr S_T, residuals at round-off level) makes B = 0: the score is not finite and the
public functions raise. Classes need one sample each (a singleton class has zero scatter of its
own and is fine). Cost at N = 500, D = 1600, C = 10 (jitted, this loaded 2-core CPU): ≈ 0.08 s
per model with the shared eigendecomposition.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import HIGHEST, Shared

LARGEST_EIGENVALUE = ("exact", "power")
MIN_PER_CLASS = 1
SHRINKAGE_RATE = 5.0  # λ = exp(−5 σ_max(S_W)), the reference's constant
MIN_SHRINKAGE = 1e-10
POWER_ROUNDS = 3  # the reference's `iterative_A(A, max_iterations=3)`: two matvecs per round


def _dot(a, b):
  return jnp.matmul(a, b, precision=HIGHEST)


def coordinates(shared: Shared) -> jax.Array:
  """[N, k] the centred, normalised features in a basis of their span: Z itself when N − 1 ≥ D,
  else the k = N − 1 PCA coordinates U_k √σ_k (components at round-off level set to 0)."""
  n, d = shared.n, shared.d
  if n - 1 >= d:
    return shared.normalized
  k = n - 1
  sigma, u = shared.centered_gram_eigh
  sigma, u = sigma[-k:], u[:, -k:]
  keep = sigma > max(n, d) * jnp.finfo(sigma.dtype).eps * sigma[-1]
  return u * jnp.where(keep, jnp.sqrt(jnp.where(keep, sigma, 0)), 0)


def _class_stats(x, shared: Shared):
  """Class means [C, k], within-class residuals [N, k] (formed directly: no E[x²] − E[x]²
  cancellation) and tr(S_W)."""
  counts = jnp.maximum(shared.counts, 1)[:, None]
  means = _dot(shared.onehot.T, x) / counts
  resid = x - means[shared.labels]
  return means, resid, jnp.sum(resid * resid) / shared.n


def _scatter(x, shared: Shared):
  """Class means [C, k] and the eigendecomposition (ω ascending, E) of S_W = RᵀR/N (k×k), with
  round-off eigenvalues set to 0, and tr(S_W) (from the residuals directly)."""
  means, resid, trace = _class_stats(x, shared)
  scatter = _dot(resid.T, resid) / shared.n
  omega, e = jnp.linalg.eigh(scatter)
  tol = scatter.shape[0] * jnp.finfo(omega.dtype).eps * omega[-1]
  omega = jnp.where(omega > tol, omega, 0)
  return means, omega, e, trace


def _saturated(x, means, resid, trace, shrinkage_max, shared: Shared) -> jax.Array:
  """Whether the first pass's posterior p(y_i | x_i) is 1 to far below round-off for every
  sample (then q is constant, the ConfMix pass scales x − μ̄_{−y} and B alike, its distances
  equal the first pass's, and the score is exactly 1), certified from bounds without S_W's
  eigendecomposition; for every λ ≤ `shrinkage_max`.

  Only for the PCA coordinates x = U_k √σ_k (N − 1 < D), where S_W's null directions are
  known: w_a = Uᵀ ô_a / √σ (ô_a the normalised indicator of class a) has x w_a constant within
  classes, so R w_a = 0. For any w, Cauchy–Schwarz in B's inner product gives
  gᵀB⁻¹g ≥ (wᵀg)² / wᵀBw with wᵀBw ≤ ‖R w‖²/N + λ m ‖w‖² (formed from sums of squares, so
  round-off only weakens the bound); the true class's distance is rᵢᵀB⁻¹rᵢ ≤ N h_ii / (1 − λ)
  ≤ N / (1 − λ) (B ≥ (1 − λ) RᵀR/N, h_ii a leverage). Saturated when every other class is
  e^-45 / C less likely than the true one under these bounds (far below float64 round-off).
  """
  n, d = shared.n, shared.d
  k = x.shape[1]
  sigma, u = shared.centered_gram_eigh
  sigma, u = sigma[-k:], u[:, -k:]
  keep = sigma > max(n, d) * jnp.finfo(sigma.dtype).eps * sigma[-1]
  counts = jnp.maximum(shared.counts, 1)
  proj = _dot(u.T, shared.onehot) / jnp.sqrt(counts)  # [k, C]
  w = jnp.where(keep[:, None], proj / jnp.sqrt(jnp.where(keep, sigma, 1))[:, None], 0)
  xw, mw, rw = _dot(x, w), _dot(means, w), _dot(resid, w)  # [N, C], [C, C], [N, C]
  wbw = jnp.sum(rw * rw, axis=0) / n + shrinkage_max * (trace / d) * jnp.sum(w * w, axis=0)
  wbw = jnp.where(wbw > 0, wbw, jnp.inf)
  proj_g = xw[:, None, :] - mw[None, :, :]  # [N, C (class c), C (direction a)]
  lower = jnp.max(proj_g**2 / wbw, axis=2)  # [N, C] ≤ d_ic
  upper = n / (1 - shrinkage_max)  # ≥ d_iy
  log_prior = jnp.log(counts / n)
  margin = 0.5 * (lower - upper) - (log_prior[None, :] - log_prior[shared.labels][:, None])
  other = shared.onehot == 0
  return jnp.all(jnp.where(other, margin, jnp.inf) > jnp.log(shared.num_classes) + 45.0)


def _posterior(x, means, omega, e, trace, shrinkage, shared: Shared) -> jax.Array:
  """[N, C] the LDA posterior p(c | x_i) with B = (1 − λ) S_W + λ (tr S_W / D) I."""
  ell = (1 - shrinkage) * omega + shrinkage * (trace / shared.d)
  w = 1 / jnp.sqrt(ell)
  a, b = _dot(x, e) * w, _dot(means, e) * w  # whitened points and class means
  dist = jax.lax.map(lambda bc: jnp.sum((a - bc) ** 2, axis=1), b).T  # [N, C], from differences
  present = shared.counts > 0
  log_prior = jnp.where(present, jnp.log(jnp.where(present, shared.counts / shared.n, 1)), -jnp.inf)
  return jax.nn.softmax(-0.5 * dist + log_prior, axis=1)


def _power_estimate(shared: Shared) -> jax.Array:
  """The reference's σ_max estimate: x = S_W 1, three rounds y = S_W x/‖·‖, x = S_W y/‖·‖, then
  xᵀ S_W y; S_W v = Rᵀ(R v)/N on the D-dimensional residuals (units of `Shared.scale`²)."""
  resid = shared.residuals
  matvec = lambda v: _dot(resid.T, _dot(resid, v)) / shared.n
  x = matvec(jnp.ones((shared.d,), shared.dtype))
  y = x
  for _ in range(POWER_ROUNDS):
    t = matvec(x)
    y = t / jnp.linalg.norm(t)
    t = matvec(y)
    x = t / jnp.linalg.norm(t)
  return jnp.dot(x, matvec(y))


def _true_class(probs, labels):
  return jnp.take_along_axis(probs, labels[:, None], axis=1)[:, 0]


def sfda_kernel(shared: Shared, *, largest_eigenvalue: str = "exact") -> jax.Array:
  """SFDA (pure, traceable, vmappable)."""
  if largest_eigenvalue not in LARGEST_EIGENVALUE:
    raise ValueError(
      f"unknown SFDA largest_eigenvalue {largest_eigenvalue!r}; valid: {LARGEST_EIGENVALUE}"
    )
  x = coordinates(shared)
  means, resid, trace = _class_stats(x, shared)
  # Within-class scatter at round-off level is zero scatter (B = 0: not finite, reported).
  floor = (shared.n * jnp.finfo(x.dtype).eps) ** 2 * jnp.sum(x * x) / shared.n
  trace = jnp.where(trace > floor, trace, jnp.nan)
  power = _power_estimate(shared) if largest_eigenvalue == "power" else None
  shrink = lambda top: jnp.maximum(jnp.exp(-SHRINKAGE_RATE * top * shared.scale**2), MIN_SHRINKAGE)

  def full(_):
    means, omega, e, _ = _scatter(x, shared)
    shrinkage = shrink(omega[-1] if power is None else power)
    return _two_passes(x, means, omega, e, trace, shrinkage, shared)

  if shared.n - 1 >= shared.d:
    return full(None)
  # λ is decreasing in σ_max, and S_W's largest diagonal entry is ≤ σ_max: an upper bound on λ.
  top = jnp.max(jnp.sum(resid * resid, axis=0)) / shared.n if power is None else power
  saturated = _saturated(x, means, resid, trace, shrink(top), shared)
  return jax.lax.cond(saturated, lambda _: jnp.ones((), x.dtype), full, None)


def _two_passes(x, means, omega, e, trace, shrinkage, shared: Shared) -> jax.Array:
  """The posterior pass, the ConfMix mix, the posterior pass on the mixed points: the score."""
  labels = shared.labels
  probs = _posterior(x, means, omega, e, trace, shrinkage, shared)
  # ConfMix: q = softmax of the probabilities (the reference's "soften") at the true class
  q = _true_class(jax.nn.softmax(probs, axis=1), labels)[:, None]
  present = (shared.counts > 0)[:, None]
  total = jnp.sum(jnp.where(present, means, 0), axis=0)
  outer = (total - means) / (jnp.sum(present) - 1)  # unweighted mean of the other classes' means
  mixed = q * x + (1 - q) * outer[labels]
  means2, omega2, e2, trace2 = _scatter(mixed, shared)
  probs2 = _posterior(mixed, means2, omega2, e2, trace2, shrinkage, shared)
  return jnp.mean(_true_class(probs2, labels))


def sfda(features, labels, *, num_classes: int, largest_eigenvalue: str = "exact") -> jax.Array:
  """SFDA of `features` [N, D] for `labels` [N]: the mean probability of the true class after the
  self-challenging mix (`largest_eigenvalue` "exact" or the reference's "power" estimate)."""
  return score_one(
    "sfda", features, labels, num_classes=num_classes, largest_eigenvalue=largest_eigenvalue
  )
