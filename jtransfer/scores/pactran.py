"""PACTran-Gaussian (Ding et al., "PACTran: PAC-Bayesian metrics for estimating the
transferability of pretrained models to classification tasks", ECCV 2022). ↓ (a bound on the
fine-tuned linear head's loss: lower is better).

Definition (google-research/pactran_metrics `compute_metrics.py` `calculate_pac_gauss`, and the
copy in mgholamikn/ETran `metrics.py` `PAC_Score`, both read for this module): with the features
x_i centred, D their dimension, one-hot labels y_i and λ = `lda_factor` (the prior variance of
each weight), a linear softmax head θ = (W [D, C], b [C]) is fitted by MAP:
  L(θ) = (1/N) Σ_i CE(softmax(x_i W + b), y_i) + ½‖W‖² / (λN),
and with θ* its minimiser, q_ic = p_ic(1 − p_ic) the diagonal of the softmax Jacobian there,
  σ⁻² = [Σ_i (‖x_i‖² + 1) Σ_c q_ic] · λN / (DC) + 1 + 1e-10
(the sum of the Hessian's diagonal, bias entries included, times λN / (DC)), and
  PACTran-Gaussian = L(θ*) + ½ · (DC / (λN)) · (s2_factor / D) · log σ⁻²
                   = L(θ*) + ½ · C · s2_factor / (λN) · log σ⁻².
The reference's grid: λ ∈ {10, 1, 0.1} with s2_factor ∈ {1000, 100}, {100, 10}, {10, 1}
respectively (two values per λ, both written under one name). jtransfer's defaults are
λ = 1, s2_factor = 100: the first value of λ = 1, the setting ETran's comparison reports
(`PAC_Score(..., lda_factor=1)`, `-pg[0][1]`); both are options.

How it is computed: the minimiser's W lies in the span of the centred features (its gradient
does), so the head is fitted on the k = min(N − 1, D) PCA coordinates from the shared centred
Gram eigendecomposition (in normalised units, the prior variance rescaled by `Shared.scale`²;
components at round-off level set to 0): the same minimum, the same ‖x_i‖², no D × C
parameters when N < D. The fit is Newton's method, jittable and vmappable with bounded loops
(`lax.while_loop`, at most `NEWTON_STEPS` = 50 steps of at most `CG_STEPS` = 50 conjugate-
gradient rounds): each step solves H s = −g by conjugate gradients with Hessian-vector products
(two [N, k] × [k, C] products each), preconditioned by the Hessian's diagonal (in PCA
coordinates the features are uncorrelated) and restricted to heads whose columns sum to 0 (the
softmax is blind to a common shift of the columns; the prior makes the minimiser's columns sum
to 0), CG stopping once its residual is at round-off; then of the steps 2^10 … 2^-29 and 0 the
one of least loss (the margins are linear in θ: every candidate costs O(N·C); long steps cross
the separable, weakly regularised phase in a few iterations), the full step wherever it is as
good to round-off. Newton stops once the decrement −gᵀs is at round-off of the loss (after
taking that step). Loss, gradient and curvature are formed from the margins l − l_y and the
other classes' probabilities, and q_ic as p_ic · exp(log(1 − p_ic)) from the logits, so
saturated samples keep their small values in float32 (float32 then matches float64 to ≤ 1e-5
from features of 1e-8 to 1e10). On the tests' cases and a 500 × 1600 post-ReLU probe it
converges in ≤ 10 steps; the tests check it against SciPy's L-BFGS-B run to convergence on the
reference's D-dimensional objective.

Pitfalls of the public code, and what jtransfer does:
- Not converged: the reference stops L-BFGS-B at maxiter = 100 (ETran's copy at 10) or at a
  relative decrease below 1e-6, from a random start (np.random.normal(size=(D, C)) · 0.03 from
  NumPy's global seed), so its value depends on the start and falls short of the minimum where
  the fit converges slowly (large features, N < D: the separable, weakly regularised case).
  jtransfer computes the value at the minimiser (the tests show the published settings'
  shortfall on a built case).
- The two s2 values of one λ are returned under the same name ("pac_gauss_1.0"): which one a
  reader of the written file gets is ambiguous; jtransfer names s2_factor explicitly.
- Both references centre the caller's array in place (`features_np_all -= mean`); jtransfer
  never modifies its input.
- q = p − p² (the reference) is 0 in float64 once p rounds to 1 (margins ≳ 37, features of
  very large scale): saturated samples then drop out of σ⁻² and the value falls to the loss
  alone (≈ 0); jtransfer forms q without that cancellation.
- Not scale invariant (λ is absolute, in the features' units, as in the reference) and
  invariant to a common shift. The reference's one-hot label entropy term
  Σ y log(y + 1e-10) = log(1 + 1e-10) per sample is left out (< 1e-9).

Registered by default: at N = 500, D = 1600, C = 10 (float32, this loaded 2-core CPU) PACTran
alone takes ≈ 38 ms per model with its own Gram and eigh, and the six issue-24 scores together
add ≈ 17 ms to the fused pass's 79 ms (BENCHMARKS.md): nothing like N-LEEP's 10×.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jtransfer.scores.compute import score_one
from jtransfer.scores.shared import HIGHEST, Shared

MIN_PER_CLASS = 1
LDA_FACTOR = 1.0
S2_FACTOR = 100.0
NEWTON_STEPS = 50
CG_STEPS = 50
LINE_STEPS = 40  # candidate steps 2^10 ... 2^-29 (and 0): the one of least loss is taken
LINE_UP = 10


def _dot(a, b):
  return jnp.matmul(a, b, precision=HIGHEST)


def pca_coordinates(shared: Shared) -> jax.Array:
  """[N, k] PCA coordinates U_k √σ_k (normalised units), k = min(N − 1, D), round-off
  components set to 0."""
  n, d = shared.n, shared.d
  k = max(1, min(n - 1, d))
  sigma, u = shared.centered_gram_eigh
  sigma, u = sigma[-k:], u[:, -k:]
  kept = sigma > max(n, d) * jnp.finfo(sigma.dtype).eps * sigma[-1]
  return u * jnp.where(kept, jnp.sqrt(jnp.where(kept, sigma, 0)), 0)


def _centre_classes(a):
  """Project onto heads whose columns (the last axis) sum to 0."""
  return a - jnp.mean(a, axis=-1, keepdims=True)


def cross_entropy(margins, onehot):
  """[..., N] −log p(y_i | i) = log(1 + Σ_{c ≠ y_i} exp(l_ic − l_iy_i)) from the margins
  l − l_y (no cancellation where the true class dominates: the case at a separable minimum)."""
  others = jnp.where(onehot, -jnp.inf, margins)
  return jax.nn.softplus(jax.nn.logsumexp(others, axis=-1))


def _margins(logits, onehot):
  return logits - jnp.sum(logits * onehot, axis=-1, keepdims=True)


def fit_head(x, onehot, inv_prior):
  """The MAP softmax head on x [N, k] with prior precision `inv_prior` (× N): (A [k, C],
  b [C], logits [N, C]) after NEWTON_STEPS preconditioned Newton-CG steps.

  Everything the fit reads is formed relative to the true class (margins l − l_y, the other
  classes' probabilities), so a saturated sample's tiny loss, gradient and curvature keep
  their relative accuracy in float32."""
  n = x.shape[0]
  dtype = x.dtype
  xx = x * x
  counts = jnp.sum(onehot, axis=0)
  a0 = jnp.zeros((x.shape[1], onehot.shape[1]), dtype)
  b0 = _centre_classes(jnp.log(counts / n))
  up = 2.0 ** (LINE_UP - jnp.arange(LINE_STEPS, dtype=dtype))
  steps = jnp.concatenate([up, jnp.zeros((1,), dtype)])
  tiny = jnp.finfo(dtype).tiny
  cg_tol = 100 * jnp.finfo(dtype).eps  # relative residual at which CG stops
  mask = onehot > 0

  def newton(state):
    i, a, b, _ = state
    margins = _margins(_dot(x, a) + b, onehot)
    p = jax.nn.softmax(margins, axis=1)
    off = jnp.where(mask, 0, p)  # p of the other classes
    r = (off - onehot * jnp.sum(off, axis=1, keepdims=True)) / n  # (p − y)/N, no 1 − p_y
    ga = _dot(x.T, r) + inv_prior * a
    gb = jnp.sum(r, axis=0)
    q = softmax_variance(margins)
    ha = _dot(xx.T, q) / n + inv_prior
    hb = jnp.sum(q, axis=0) / n
    hb = jnp.maximum(hb, 1e-6 * jnp.max(hb)) + tiny

    def hvp(va, vb):
      dm = _margins(_dot(x, va) + vb, onehot)  # direction in margins: 0 at the true class
      hd = p * (dm - jnp.sum(off * dm, axis=1, keepdims=True)) / n
      return _dot(x.T, hd) + inv_prior * va, jnp.sum(hd, axis=0)

    def precondition(ra, rb):
      return _centre_classes(ra / ha), _centre_classes(rb / hb)

    def inner(u, v):
      return jnp.sum(u[0] * v[0]) + jnp.sum(u[1] * v[1])

    r0 = (-_centre_classes(ga), -_centre_classes(gb))
    z0 = precondition(*r0)
    rz0 = inner(r0, z0)

    def cg(carry):
      i, s, r, d, rz, _ = carry
      hd = hvp(*d)
      dhd = inner(d, hd)
      ok = dhd > 0  # curvature left along d
      alpha = jnp.where(ok, rz / jnp.where(ok, dhd, 1), 0)
      s = (s[0] + alpha * d[0], s[1] + alpha * d[1])
      r = (r[0] - alpha * hd[0], r[1] - alpha * hd[1])
      z = precondition(*r)
      rz_new = inner(r, z)
      beta = jnp.where(ok, rz_new / jnp.where(rz > 0, rz, 1), 0)
      # Solved to round-off (rz below (100 eps)² rz0, or negative): stop; iterating on
      # round-off residuals diverges.
      active = ok & (rz_new > cg_tol**2 * rz0)
      return i + 1, s, r, (z[0] + beta * d[0], z[1] + beta * d[1]), rz_new, active

    zero = (jnp.zeros_like(a), jnp.zeros_like(b))
    init = (0, zero, r0, z0, rz0, rz0 > 0)
    s = jax.lax.while_loop(lambda c: (c[0] < CG_STEPS) & c[5], cg, init)[1]
    slope = inner((ga, gb), s)  # −(Newton decrement)² for an exact solve
    # The step: of 2^10 ... 2^-29 and 0, the one of least loss (the margins are linear in θ,
    # so every candidate costs O(N·C); long steps cross the separable phase quickly).
    dm = _margins(_dot(x, s[0]) + s[1], onehot)
    mt = margins[None] + steps[:, None, None] * dm[None]  # [J, N, C]
    ft = jnp.mean(cross_entropy(mt, mask[None]), axis=1) + 0.5 * inv_prior * (
      jnp.sum(a * a) + 2 * steps * jnp.sum(a * s[0]) + steps**2 * jnp.sum(s[0] * s[0])
    )
    ft = jnp.where(jnp.isfinite(ft), ft, jnp.inf)  # overflowing candidates never win
    # t = 0 is a candidate: never uphill. Where the full Newton step is as good as the best to
    # round-off, take it: near the minimum the loss cannot tell steps of θ below √eps apart,
    # and full steps converge in θ itself (the value's log term reads θ to first order).
    best = jnp.min(ft)
    full = ft[LINE_UP] <= best + 16 * jnp.finfo(dtype).eps * jnp.abs(best)
    t = jnp.where(full, 1, steps[jnp.argmin(ft)])
    # Converged once the Newton decrement −gᵀs is at round-off of the loss (this last full
    # step squares the remaining error), or when no step lowers the loss.
    done = (-slope <= 16 * jnp.finfo(dtype).eps * jnp.abs(ft[-1])) | (t == 0)
    return i + 1, a + t * s[0], b + t * s[1], done

  cond = lambda state: (state[0] < NEWTON_STEPS) & ~state[3]  # noqa: E731
  _, a, b, _ = jax.lax.while_loop(cond, newton, (0, a0, b0, jnp.asarray(False)))
  return a, b, _dot(x, a) + b


def softmax_variance(logits):
  """[N, C] p(1 − p) with 1 − p_c = Σ_{c' ≠ c} p_c' taken from the logits (no cancellation)."""
  c = logits.shape[1]
  lse = jax.nn.logsumexp(logits, axis=1, keepdims=True)
  others = jnp.where(jnp.eye(c, dtype=bool)[None], -jnp.inf, logits[:, None, :])
  log_rest = jax.nn.logsumexp(others, axis=2)  # [N, C]: log Σ_{c' ≠ c} exp l_c'
  return jnp.exp((logits - lse) + (log_rest - lse))


def pactran_kernel(
  shared: Shared, *, lda_factor: float = LDA_FACTOR, s2_factor: float = S2_FACTOR
) -> jax.Array:
  """PACTran-Gaussian (pure, traceable, vmappable)."""
  n, d, c = shared.n, shared.d, shared.num_classes
  x = pca_coordinates(shared)
  scale2 = shared.scale**2
  prior = lda_factor * n  # the reference's ldas2 (features' units)
  inv_prior = 1 / (prior * scale2)  # in the normalised units of x
  onehot = shared.onehot
  a, _, logits = fit_head(x, onehot, inv_prior)
  mask = onehot > 0
  loss = jnp.mean(cross_entropy(_margins(logits, onehot), mask)) + 0.5 * inv_prior * jnp.sum(a * a)
  q = jnp.sum(softmax_variance(logits), axis=1)  # [N]
  sq_norms = jnp.sum(x * x, axis=1) * scale2
  total = jnp.sum((sq_norms + 1) * q) * (prior / (d * c))
  return loss + 0.5 * c * s2_factor / prior * jnp.log1p(total + 1e-10)


def pactran(
  features,
  labels,
  *,
  num_classes: int,
  lda_factor: float = LDA_FACTOR,
  s2_factor: float = S2_FACTOR,
) -> jax.Array:
  """PACTran-Gaussian of `features` [N, D] for `labels` [N]: the MAP softmax head's loss plus
  the PAC-Bayes complexity term (prior variance `lda_factor`, `s2_factor` / D) (↓)."""
  return score_one(
    "pactran", features, labels, num_classes=num_classes, lda_factor=lda_factor,
    s2_factor=s2_factor,
  )  # fmt: skip
