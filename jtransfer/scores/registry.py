"""The score registry: one `ScoreSpec` per score, keyed by the name stored in results.

A spec says how to read the score (`higher_is_better`), what it needs (features, labels, the
source model's softmax), how many samples it needs, its option defaults, and where its public
function and traceable kernel live. Modules are imported on first use, so a spec exists even
before its module is imported.

Kernel contract: feature scores take `kernel(shared: Shared, **options)`; source-prediction
scores take `kernel(source_probs, labels, num_classes, **options)`; both return a scalar array.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

FEATURES, LABELS, SOURCE_PROBS = "features", "labels", "source_probs"


@dataclasses.dataclass(frozen=True)
class ScoreSpec:
  """How to compute and read one score."""

  name: str
  higher_is_better: bool
  inputs: tuple[str, ...]  # subset of (FEATURES, LABELS, SOURCE_PROBS)
  module: str  # module in jtransfer.scores holding `<fn_name>` and `<fn_name>_kernel`
  fn_name: str = ""  # defaults to `name`
  min_per_class: int = 1  # every class needs this many samples (only when LABELS is an input)
  min_samples: int = 2
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  nonconstant_rows: bool = False  # rows with zero variance are an error (RSA)
  description: str = ""
  # Computed when no names are given; False for a score that costs far more than the fused
  # pass (N-LEEP's 100-round EM per model): asked for by name.
  by_default: bool = True
  # Served on the randomized route (`shared.route`): reads at most the top eigenpairs of the
  # centred Gram (`Shared.top_eigh`), or no eigendecomposition at all.
  randomized: bool = False
  # (option, value) pairs with which the score is not served there (they need the full spectrum).
  randomized_refuses: tuple[tuple[str, Any], ...] = ()

  def __post_init__(self):
    object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
    if not self.fn_name:
      object.__setattr__(self, "fn_name", self.name)

  @property
  def needs_features(self) -> bool:
    return FEATURES in self.inputs

  @property
  def needs_labels(self) -> bool:
    return LABELS in self.inputs

  @property
  def needs_source_probs(self) -> bool:
    return SOURCE_PROBS in self.inputs

  @property
  def sign(self) -> str:
    """↑ when higher means better transfer, ↓ when lower does."""
    return "↑" if self.higher_is_better else "↓"

  def _module(self):
    return importlib.import_module(f"jtransfer.scores.{self.module}")

  @property
  def fn(self) -> Callable[..., Any]:
    """The public, eagerly validated function."""
    return getattr(self._module(), self.fn_name)

  @property
  def kernel(self) -> Callable[..., Any]:
    """The pure, traceable kernel."""
    return getattr(self._module(), f"{self.fn_name}_kernel")

  def available(self) -> bool:
    """Whether the implementing module can be imported (all do in a complete install)."""
    try:
      self._module()
    except ModuleNotFoundError:
      return False
    return True

  def resolve_options(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults updated by `overrides`; unknown option names fail listing the valid ones."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(self.options))
    if unknown:
      raise ValueError(
        f"unknown options {unknown} for score {self.name!r}; valid: {sorted(self.options)}"
      )
    return {**self.options, **overrides}


_FL = (FEATURES, LABELS)
_SL = (SOURCE_PROBS, LABELS)

_SPECS = (
  ScoreSpec("two_nn", False, (FEATURES,), "two_nn", min_samples=3,
            options={"fraction": 0.9},
            description="TWO-NN intrinsic dimension (Ansuini cleaning)"),
  ScoreSpec("sum_of_squares", False, _FL, "sum_of_squares", min_per_class=2,
            description="within-class / total sum of squares"),
  ScoreSpec("rsa", True, _FL, "rsa", min_per_class=2, nonconstant_rows=True,
            description="RDM mean different-class minus same-class"),
  ScoreSpec("nc_score", False, _FL, "neural_collapse", min_per_class=2,
            description="neural-collapse score (authors' code)"),
  ScoreSpec("nc_score_eq2", False, _FL, "neural_collapse", min_per_class=2,
            description="neural-collapse score (paper eq. 2)"),
  ScoreSpec("logme", True, _FL, "logme", options={"schedule": "converged"},
            description="LogME evidence (correct for N < D)"),
  ScoreSpec("h_score", True, _FL, "h_score", description="H-score"),
  ScoreSpec("h_score_shrinkage", True, _FL, "h_score", description="H-score, Ledoit-Wolf"),
  ScoreSpec("transrate", True, _FL, "transrate", options={"eps": 1e-4},
            description="TransRate coding-rate gain"),
  ScoreSpec("gbc", True, _FL, "gbc", min_per_class=2,
            options={"gaussian": "diagonal", "pca_dim": 64},
            description="Gaussian Bhattacharyya coefficient"),
  ScoreSpec("sfda", True, _FL, "sfda", options={"largest_eigenvalue": "exact"},
            description="SFDA self-challenging Fisher posterior"),
  ScoreSpec("parc", True, _FL, "parc", options={"pca_dim": 32},
            description="PARC feature-RDM vs label-RDM Spearman (×100)"),
  ScoreSpec("nleep", True, _FL, "nleep",
            options={"components_per_class": 5, "variance": 0.8, "seed": 0}, by_default=False,
            description="N-LEEP: LEEP of a diagonal GMM on PCA (80%) features (by name only)"),
  ScoreSpec("ncti_seli", True, _FL, "ncti", options={"pca_dim": 64},
            description="NCTI term: nuclear norm of the LDA projection (pool: ncti)"),
  ScoreSpec("ncti_ncc", True, _FL, "ncti", options={"pca_dim": 64},
            description="NCTI term: mean LDA posterior of the true class (pool: ncti)"),
  ScoreSpec("ncti_vc", False, _FL, "ncti", options={"pca_dim": 64},
            description="NCTI term: log Σ_c nuclear norm of class posteriors (pool: ncti)"),
  ScoreSpec("etran_energy", True, (FEATURES,), "etran", options={"percent": 0.5},
            description="ETran term: mean logsumexp of the lowest 0.5% (pool: etran)"),
  ScoreSpec("etran_lda", True, _FL, "etran", options={"covariance": "identity"},
            description="ETran term: mean class posterior, released 'LDA' (pool: etran)"),
  ScoreSpec("pactran", False, _FL, "pactran", options={"lda_factor": 1.0, "s2_factor": 100.0},
            description="PACTran-Gaussian: MAP softmax head loss + PAC-Bayes term"),
  ScoreSpec("knn_accuracy", True, _FL, "knn", options={"k": 5},
            description="leave-one-out kNN accuracy (baseline)"),
  ScoreSpec("leep", True, _SL, "source_probs", description="LEEP (source softmax)"),
  ScoreSpec("nce", True, _SL, "source_probs", description="NCE (source argmax)"),
)  # fmt: skip

# Served on the randomized route: no eigendecomposition, or only its top (PCA to pca_dim).
_RANDOMIZED = (
  "two_nn", "sum_of_squares", "rsa", "nc_score", "nc_score_eq2", "gbc", "parc", "ncti_seli",
  "ncti_ncc", "ncti_vc", "etran_energy", "etran_lda", "knn_accuracy", "leep", "nce",
)  # fmt: skip
_SPECS = tuple(
  dataclasses.replace(
    s, randomized=s.name in _RANDOMIZED,
    randomized_refuses=(("covariance", "shrunk"),) if s.name == "etran_lda" else (),
  )
  for s in _SPECS
)  # fmt: skip

REGISTRY: Mapping[str, ScoreSpec] = MappingProxyType({s.name: s for s in _SPECS})

# Scores of a checkpoint itself, not of its features (the score job computes them without a
# spec): their sign, so every sign the analysis reads comes from this module.
CHECKPOINT_BASELINES: Mapping[str, bool] = MappingProxyType(
  {"checkpoint_index": True, "param_count": True}
)


@dataclasses.dataclass(frozen=True)
class PoolSpec:
  """A pool-relative score: registered per-model terms combined over the models being ranked
  (`jtransfer.scores.pool`); `<name>_pool` in `module` computes it from {term: [M] values}."""

  name: str
  higher_is_better: bool
  terms: tuple[str, ...]
  module: str
  description: str = ""

  @property
  def fn(self) -> Callable[..., Any]:
    return getattr(importlib.import_module(f"jtransfer.scores.{self.module}"), f"{self.name}_pool")


POOL: Mapping[str, PoolSpec] = MappingProxyType({
  p.name: p for p in (
    PoolSpec("ncti", True, ("ncti_seli", "ncti_ncc", "ncti_vc"), "ncti",
             "NCTI: minmax(ncc) + minmax(seli) − minmax(vc) over the pool"),
    PoolSpec("etran", True, ("etran_energy", "etran_lda"), "etran",
             "ETran: 0.15 minmax(energy) + 0.85 minmax(lda) over the pool"),
  )
})  # fmt: skip


def signs() -> dict[str, bool]:
  """name -> higher_is_better for every registered score, checkpoint baseline and pool score."""
  return {
    **{n: s.higher_is_better for n, s in REGISTRY.items()},
    **CHECKPOINT_BASELINES,
    **{n: p.higher_is_better for n, p in POOL.items()},
  }


def get(name: str) -> ScoreSpec:
  """The spec of score `name`; an unknown name fails listing the valid ones."""
  try:
    return REGISTRY[name]
  except KeyError:
    raise ValueError(f"unknown score {name!r}; valid scores: {', '.join(REGISTRY)}") from None


def names(
  *, labels: bool = True, source_probs: bool = False, features: bool = True, every: bool = False
) -> list[str]:
  """Registry names applicable to the inputs at hand, in registry order: those computed by
  default (`by_default`), or every one with `every=True`."""
  have = {FEATURES: features, LABELS: labels, SOURCE_PROBS: source_probs}
  return [s.name for s in _SPECS if all(have[i] for i in s.inputs) and (every or s.by_default)]
