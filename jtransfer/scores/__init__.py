"""Transferability scores as pure, batched JAX kernels.

Public API: one function per score (`two_nn(features)`, `<name>(features, labels, *,
num_classes, **options)`, `leep` / `nce(source_probs, labels, *, num_classes)`), the `REGISTRY`
of score specs, `compute` / `compute_batched` for many scores (and many models) in one pass, and
`route(n, d, names)`: which factorisation a probe's shape takes for those scores (N×N Gram,
D×D covariance, or the randomized top of the spectrum for the scores it serves).

Several modules share their function's name (`two_nn`, `logme`, ...): the explicit imports
below bind the package attribute to the function, after the submodule itself was imported.
"""

from jtransfer.scores.compute import compute, compute_batched
from jtransfer.scores.etran import etran_energy, etran_lda, etran_pool
from jtransfer.scores.gbc import gbc
from jtransfer.scores.h_score import h_score, h_score_shrinkage
from jtransfer.scores.knn import knn_accuracy
from jtransfer.scores.logme import logme
from jtransfer.scores.ncti import ncti_ncc, ncti_pool, ncti_seli, ncti_vc
from jtransfer.scores.neural_collapse import nc_score, nc_score_eq2
from jtransfer.scores.nleep import nleep
from jtransfer.scores.pactran import pactran
from jtransfer.scores.parc import parc
from jtransfer.scores.registry import REGISTRY, ScoreSpec, get
from jtransfer.scores.rsa import rsa
from jtransfer.scores.sfda import sfda
from jtransfer.scores.shared import Shared, route
from jtransfer.scores.source_probs import leep, nce
from jtransfer.scores.sum_of_squares import sum_of_squares
from jtransfer.scores.transrate import transrate
from jtransfer.scores.two_nn import two_nn

__all__ = [
  "REGISTRY", "ScoreSpec", "Shared", "compute", "compute_batched", "etran_energy", "etran_lda",
  "etran_pool", "gbc", "get", "h_score", "h_score_shrinkage", "knn_accuracy", "leep", "logme",
  "names", "nc_score", "nc_score_eq2", "nce", "ncti_ncc", "ncti_pool", "ncti_seli", "ncti_vc",
  "nleep", "pactran", "parc", "route", "rsa", "sfda", "sum_of_squares", "transrate", "two_nn",
]  # fmt: skip


def names() -> tuple[str, ...]:
  """Every registered score, in registry order (like `data.names()`, `models.names()`)."""
  return tuple(REGISTRY)
