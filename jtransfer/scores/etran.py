"""ETran, energy-based transferability estimation (Gholami et al., ICCV 2023): two per-model
terms, each registered as its own score, and the pool-relative combination the authors publish.

Definition (mgholamikn/ETran `metrics.py` `Energy_Score`, `LDA_Score` and class `LDA`,
`evaluate_metric.py` and `tw.py`, read for this module):
- `etran_energy` ↑: per sample the negative free energy −E(f_i) = log Σ_d exp f_id of the
  features themselves (the input of the network's classifier, treated as logits), averaged
  over the k samples with the *lowest* values (the 'bot' tail), k = ⌊10·percent⌋·N // 1000
  with percent = 0.5: the 0.5% of samples that look most out-of-distribution.
- `etran_lda` ↑: the mean posterior of the true class under the reference's "LDA" classifier;
  what the released code computes is softmax_c(−½‖f_i − μ_c‖² + log π_c) (see the pitfalls).
- the published ETran (classification; `tw.py`) = 0.15·norm(energy) + 0.85·norm(lda), each
  term min–max normalised over the candidate models: `etran_pool`.

How it is computed: the energy is a logsumexp over each raw feature row (it reads the
features' offset and units, as the reference does); the k lowest by `top_k` (k is static: it
depends on N only). The LDA term's distances are formed from differences of the centred,
scale-normalised features (`Shared.normalized` and its class means) times `Shared.scale`², one
class at a time (N·D memory). With covariance="shrunk" the posterior is SFDA's first pass (the
shared k×k within-class eigendecomposition of `jtransfer.scores.sfda`).

Pitfalls of the public code, and what jtransfer does:
- Pool-relative: `tw.py` min–max normalises each term over the models being ranked, so a
  model's ETran changes with the other candidates. jtransfer stores the raw terms as scores
  and combines them with `etran_pool` over a given pool; the analysis report's pool is the
  models ranked for one target and probe at one layer (every stored source, seed and step:
  `jtransfer.analysis.pooled`). A term equal for every model of the pool divides 0 by 0 in the
  reference (NaN); jtransfer gives it 0. The weights 0.15 / 0.85 are the released ones (the
  paper's text adds the three terms; the released classification ranking uses these two).
- The "LDA" is not an LDA: class `LDA` forms shrunk within- and between-class scatters and
  `np.linalg.eigh(inv(S_W) @ S_B)` (eigh of a non-symmetric matrix: only its lower triangle is
  read), but then uses coef = M V Vᵀ with all D orthonormal eigenvectors, and V Vᵀ = I: the
  posterior is the identity-covariance Gaussian one above, in the features' units (the
  shrinkage and the D×D eigenproblem never enter). Default `covariance="identity"` computes
  that, which produced the published rankings (and saturates to the nearest-class-mean
  resubstitution accuracy when class distances are ≫ 1, as for real post-ReLU features).
  `covariance="shrunk"` gives what the code sets out to compute: the LDA posterior with
  B = (1 − λ) S_W + λ (tr S_W / D) I, λ = max(exp(−5 σ_max(S_W)), 1e-10) (exact σ_max), i.e.
  SFDA's first pass without its ConfMix.
- The energy's k: 5N // 1000 samples is 0 for N < 200 (the reference's mean of an empty array
  is NaN for every model) and 2 at N = 500 (the score is then the mean of two samples: the most
  extreme ones). jtransfer takes max(1, k) and keeps the reference's tail and percent
  (option `percent`, the reference's integer arithmetic; percent = 100 averages every sample).
- The energy reads the features as logits: it assumes the penultimate layer of a classifier;
  at any other layer (as jtransfer scores them) it is the logsumexp of that layer's
  activations, which moves with their offset and scale (documented, not changed).
- The regression (SVD) term of the paper is for box regression: `_solve_eigen2` in the released
  code is unused and refers to an undefined `x_hat1`; fitted to one-hot labels with N ≤ D, a
  pseudo-inverse regression interpolates exactly (score 0 for every model). Not implemented.

etran_energy needs no labels. etran_lda needs every class present; a class of one sample is
fine. Cost at N = 500, D = 1600, C = 10 (float32, this loaded 2-core CPU): ≈ 3 ms (energy) and
5 ms (LDA) per model alone, one N·D pass each (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jtransfer.scores import sfda as sfda_module
from jtransfer.scores.compute import score_one
from jtransfer.scores.pool import combine
from jtransfer.scores.shared import Shared

MIN_PER_CLASS = 1
PERCENT = 0.5  # evaluate_metric.py: Energy_Score(X_features, 0.5, 'bot')
COVARIANCES = ("identity", "shrunk")
TERMS = ("etran_energy", "etran_lda")
POOL_WEIGHTS = {"etran_energy": 0.15, "etran_lda": 0.85}  # tw.py, metric 'etran'


def energy_count(n: int, percent: float) -> int:
  """How many of N samples the energy averages: the reference's ⌊10·percent⌋·N // 1000, ≥ 1."""
  return max(1, int(percent * 10) * n // 1000)


def etran_energy_kernel(shared: Shared, *, percent: float = PERCENT) -> jax.Array:
  """ETran's energy term (pure, traceable, vmappable)."""
  lse = jax.nn.logsumexp(shared.features, axis=1)
  k = energy_count(shared.n, percent)
  lowest = -jax.lax.top_k(-lse, k)[0]
  return jnp.mean(lowest)


def _identity_posterior(shared: Shared) -> jax.Array:
  z, means = shared.normalized, shared.class_means
  dist = jax.lax.map(lambda m: jnp.sum((z - m) ** 2, axis=1), means).T * shared.scale**2
  present = shared.counts > 0
  log_prior = jnp.where(present, jnp.log(jnp.where(present, shared.counts / shared.n, 1)), -jnp.inf)
  return jax.nn.softmax(-0.5 * dist + log_prior, axis=1)


def _shrunk_posterior(shared: Shared) -> jax.Array:
  x = sfda_module.coordinates(shared)
  means, omega, e, trace = sfda_module._scatter(x, shared)
  floor = (shared.n * jnp.finfo(x.dtype).eps) ** 2 * jnp.sum(x * x) / shared.n
  trace = jnp.where(trace > floor, trace, jnp.nan)  # zero within-class scatter: undefined
  shrinkage = jnp.maximum(
    jnp.exp(-sfda_module.SHRINKAGE_RATE * omega[-1] * shared.scale**2), sfda_module.MIN_SHRINKAGE
  )
  return sfda_module._posterior(x, means, omega, e, trace, shrinkage, shared)


def etran_lda_kernel(shared: Shared, *, covariance: str = "identity") -> jax.Array:
  """ETran's LDA term (pure, traceable, vmappable)."""
  if covariance not in COVARIANCES:
    raise ValueError(f"unknown etran_lda covariance {covariance!r}; valid: {COVARIANCES}")
  probs = _identity_posterior(shared) if covariance == "identity" else _shrunk_posterior(shared)
  return jnp.mean(jnp.take_along_axis(probs, shared.labels[:, None], axis=1))


def etran_energy(features, *, percent: float = PERCENT) -> jax.Array:
  """ETran's energy term of `features` [N, D]: the mean of log Σ_d exp f_id over the
  max(1, ⌊10·percent⌋·N // 1000) samples where it is lowest (↑)."""
  return score_one("etran_energy", features, percent=percent)


def etran_lda(features, labels, *, num_classes: int, covariance: str = "identity") -> jax.Array:
  """ETran's LDA term of `features` [N, D] for `labels` [N]: the mean posterior of the true
  class, identity covariance as released (or covariance="shrunk", the intended LDA) (↑)."""
  return score_one("etran_lda", features, labels, num_classes=num_classes, covariance=covariance)


def etran_pool(terms_by_model: Mapping[str, object]) -> np.ndarray:
  """The published ETran of the M models of one pool: 0.15·minmax(energy) + 0.85·minmax(lda),
  from {"etran_energy": [M], "etran_lda": [M]} (↑, in [0, 1])."""
  return combine(terms_by_model, POOL_WEIGHTS)
