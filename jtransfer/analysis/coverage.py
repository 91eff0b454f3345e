"""How often the cluster-bootstrap interval covers a known ρ, for a run's cluster layout.

Synthetic clusters with a known population Spearman ρ: cluster effects (a, b) and model effects
(e, f) are bivariate normal (correlations r_between and r_within; a fraction `share` of each
side's unit variance at the cluster level), so every model's (x, y) = (a + e, b + f) is
bivariate normal with r = share·r_between + (1 − share)·r_within, whose Spearman ρ is
(6/π)·arcsin(r/2) (Pearson's formula for the normal). Each simulated run draws C clusters of m
models, computes `cluster_bootstrap.spearman_ci`, and counts whether it covers that ρ.
"""

import dataclasses

import numpy as np

from jtransfer.analysis import cluster_bootstrap


@dataclasses.dataclass(frozen=True)
class Layout:
  """The synthetic population: its correlations and the cluster share of variance."""

  r_between: float = 0.8
  r_within: float = 0.3
  share: float = 0.7

  @property
  def rho(self) -> float:
    r = self.share * self.r_between + (1 - self.share) * self.r_within
    return float(6 / np.pi * np.arcsin(r / 2))


def _draw(rng, layout: Layout, clusters: int, per_cluster: int):
  def pairs(r, size):
    return rng.multivariate_normal([0.0, 0.0], [[1.0, r], [r, 1.0]], size=size)

  between = pairs(layout.r_between, clusters) * np.sqrt(layout.share)
  within = pairs(layout.r_within, (clusters, per_cluster)) * np.sqrt(1 - layout.share)
  xy = (between[:, None, :] + within).reshape(-1, 2)
  return xy[:, 0], xy[:, 1], np.repeat(np.arange(clusters), per_cluster)


def simulate(
  clusters: int,
  per_cluster: int,
  *,
  layout: Layout = Layout(),
  n_sim: int = 200,
  n_boot: int = cluster_bootstrap.DEFAULT_BOOT,
  seed: int = 0,
) -> dict:
  """{coverage, n_sim, mean_width, rho}: the share of `n_sim` runs whose 95% cluster CI holds
  the population ρ (the coverage's own standard error is about sqrt(0.05·0.95/n_sim))."""
  if clusters < cluster_bootstrap.MIN_CLUSTERS:
    raise ValueError(
      f"coverage needs >= {cluster_bootstrap.MIN_CLUSTERS} clusters (no interval below), "
      f"got {clusters}"
    )
  if per_cluster < 1 or n_sim < 1:
    raise ValueError(f"per_cluster and n_sim must be >= 1, got {per_cluster}, {n_sim}")
  rng = np.random.default_rng(seed)
  hits, widths = 0, []
  for i in range(n_sim):
    x, y, labels = _draw(rng, layout, clusters, per_cluster)
    lo, hi, _ = cluster_bootstrap.spearman_ci(x, y, labels, n_boot=n_boot, seed=seed + i)
    hits += bool(lo <= layout.rho <= hi)
    widths.append(hi - lo)
  return dict(coverage=hits / n_sim, n_sim=n_sim, mean_width=float(np.mean(widths)), rho=layout.rho)
