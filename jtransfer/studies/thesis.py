"""The thesis' CNN study: its published numbers (sections 3.1.2, 3.3) beside ours where the
setup matches, and which of its findings a run's data can decide.

`report(workdir, tables)` gives the standard report this study's part: `findings(a)` (lines of
its answer and power sections) and `section(doc, a)` (the "Published numbers" section), where
`a` is the standard analysis (`analysis.Analysis`).
"""

import numpy as np
import pandas as pd

from jtransfer.analysis import power
from jtransfer.analysis import report as report_lib
from jtransfer.analysis.truth import NON_SOURCES

THESIS = {
  "models": 72,  # 6 sources × 12 checkpoints, seeds averaged.
  "epochs": 100,
  "seeds": 10,
  "checkpoints": 12,
  "ft_steps": 12,
  "rsa_pool2_rho_mnist": 0.9,
  "id_pool2_mnist_split_0_4": 10.9,
  "id_pool2_mnist_noise": 16.1,
  "id_pool2_mnist_family": (10.9, 12.0),
}
TARGET, LAYER = "mnist", "pool2"  # where the thesis reports its numbers
NOISE_SOURCES = ("mnist_noise", "mnist_noise_struct")
MNIST_FAMILY = ("mnist", "mnist_split_0_4", "mnist_split_5_9")


def _fmt(x, digits=3) -> str:
  return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _longest(df: pd.DataFrame) -> pd.DataFrame:
  """Each (source, arch)'s rows at its longest pre-training."""
  return df[df["step"] == df.groupby(["source", "arch"])["step"].transform("max")]


def _full(a) -> str:
  return "full" if "full" in a.settings else a.setting


def _rsa_rows(a) -> list[dict]:
  corr = a.correlations
  r = corr[
    (corr["breakdown"] == "all")
    & (corr["probe"] == a.probe)
    & (corr["target"] == TARGET)
    & (corr["setting"] == _full(a))
    & (corr["layer"] == LAYER)
    & (corr["score"] == "rsa")
  ]
  if not len(r):
    return []
  r = r.iloc[0]
  kind = "cluster" if np.isfinite(r.get("cluster_ci_lo", np.nan)) else "spearman"
  return [
    dict(
      finding="RSA at pool2, Spearman ρ vs log-AUC, all models, target MNIST",
      thesis=f"≈ {THESIS['rsa_pool2_rho_mnist']} (n = {THESIS['models']})",
      ours=f"{_fmt(r['spearman'], 2)} [{_fmt(r[f'{kind}_ci_lo'], 2)}, "
      f"{_fmt(r[f'{kind}_ci_hi'], 2)}] (n = {int(r['n'])})",
      note="same score direction (RSA ↑); interval is "
      + ("the cluster bootstrap" if kind == "cluster" else "Bonett–Wright"),
    )
  ]


def _id_rows(a) -> list[dict]:
  s = a.scores
  idv = s[(s["score"] == "two_nn") & (s["target"] == TARGET) & (s["layer"] == LAYER)]
  idv = idv[idv["probe"] == a.probe]
  if not len(idv):
    return []
  per_source = _longest(idv).groupby("source")["value"].mean()
  rows = [
    dict(
      finding=f"TWO-NN ID at pool2, target MNIST, source {src}, longest pre-training",
      thesis=f"{THESIS[key]}",
      ours=_fmt(per_source[src], 1),
      note="seed mean",
    )
    for src, key in (
      ("mnist_split_0_4", "id_pool2_mnist_split_0_4"),
      ("mnist_noise", "id_pool2_mnist_noise"),
    )
    if src in per_source
  ]
  fam = per_source[[x for x in MNIST_FAMILY if x in per_source]]
  if len(fam):
    lo, hi = THESIS["id_pool2_mnist_family"]
    rows.append(
      dict(
        finding="TWO-NN ID at pool2, MNIST and its splits (range), target MNIST",
        thesis=f"{lo} – {hi}",
        ours=f"{_fmt(fam.min(), 1)} – {_fmt(fam.max(), 1)}",
        note="",
      )
    )
  return rows


def _noise_rows(a) -> list[dict]:
  gt = a.ground_truth
  # Only pre-training sources: scratch and random_init are fine-tune baselines, not sources.
  g = gt[(gt["target"] == TARGET) & (gt["setting"] == _full(a)) & ~gt["source"].isin(NON_SOURCES)]
  if not len(g) or not any(src in set(g["source"]) for src in NOISE_SOURCES):
    return []
  order = _longest(g).groupby("source")["log_auc"].mean().sort_values()
  noise = [x for x in NOISE_SOURCES if x in order.index]
  bottom = list(order.index[: len(noise)])
  return [
    dict(
      finding="noise sources transfer worst (log-AUC, longest pre-training, target MNIST)",
      thesis="yes, by every measure",
      ours=("yes" if set(bottom) == set(noise) else "no") + f" (lowest: {', '.join(bottom)})",
      note="",
    )
  ]


def compare(a) -> pd.DataFrame:
  """Rows: finding, thesis, ours, note."""
  rows = [*_rsa_rows(a), *_id_rows(a), *_noise_rows(a)]
  return pd.DataFrame(rows, columns=["finding", "thesis", "ours", "note"])


def differences(a) -> list[str]:
  """Setup differences that explain gaps to the published numbers."""
  out = []
  corr = a.correlations
  n = corr.loc[(corr["breakdown"] == "all") & (corr["target"] == TARGET), "n"]
  if len(n):
    out.append(
      f"models per correlation: {int(n.max())} here vs {THESIS['models']} in the thesis "
      "(fewer sources or checkpoints widen every interval; the null band grows as n shrinks)."
    )
  ck = a.checkpoints
  if ck is not None and not ck.empty and "epoch" in ck:
    ep = pd.to_numeric(ck["epoch"], errors="coerce").max()
    out.append(
      f"longest pre-training: {_fmt(ep, 2)} epochs here vs {THESIS['epochs']}; "
      f"{ck['step'].nunique()} checkpoints vs {THESIS['checkpoints']}; "
      f"{ck['seed'].nunique()} seeds vs {THESIS['seeds']}."
    )
  n_ft = a.curves.groupby(["target", "setting"])["ft_step"].nunique()
  if len(n_ft):
    out.append(
      f"fine-tune checkpoints per curve: {int(n_ft.max())} vs {THESIS['ft_steps']} "
      "(a shorter curve weighs early steps more in the log-AUC)."
    )
  out.append(
    "the thesis correlates raw ID and SS (expects negative ρ); here lower-is-better scores are "
    "negated first, so a good score always shows positive ρ."
  )
  out.append(
    "the thesis' RSA code takes an absolute value and never sorts rows by label (its 'class "
    "blocks' are not classes); ours is the definition in REFERENCE.md, so RSA values differ."
  )
  return out


def _rsa_finding(a) -> str | None:
  """The thesis' RSA ρ ≈ 0.9 at pool2 on MNIST: contradicted, consistent, or undecided."""
  c = a.correlations
  r = c[(c["breakdown"] == "all") & (c["target"] == TARGET) & (c["setting"] == a.setting)]
  r = r[(r["probe"] == a.probe) & (r["layer"] == LAYER) & (r["score"] == "rsa")]
  if r.empty:
    return None
  want = THESIS["rsa_pool2_rho_mnist"]
  if not np.isfinite(r["cluster_ci_lo"].iloc[0]):
    return (
      f"RSA at pool2 ρ ≈ {want} (MNIST): **cannot decide** — {int(r['n_clusters'].iloc[0])} "
      "independent clusters (sources / runs) are too few for an interval."
    )
  lo, hi = float(r["cluster_ci_lo"].iloc[0]), float(r["cluster_ci_hi"].iloc[0])
  ci = f"ρ = {r['spearman'].iloc[0]:.2f}, cluster CI [{lo:.2f}, {hi:.2f}]"
  if not lo <= want <= hi:
    return f"RSA at pool2 ρ ≈ {want} (MNIST): **decided** — the run contradicts it ({ci})."
  if (hi - lo) / 2 <= 0.1:
    return f"RSA at pool2 ρ ≈ {want} (MNIST): **decided** — consistent ({ci})."
  return (
    f"RSA at pool2 ρ ≈ {want} (MNIST): **cannot decide** — {ci} holds {want} and values far "
    "from it."
  )


def _noise_finding(a) -> str | None:
  got = power.noise_worst_decidable(a.source_gaps, a.power_seeds, NOISE_SOURCES, TARGET)
  if got is None:
    return None
  decided, gap, resolvable = got
  verdict = "**decided**" if decided else "**cannot decide**"
  return (
    f"noise sources transfer worst (MNIST): {verdict} — gap between the worst other source and "
    f"the best noise source {gap:+.4f} log-AUC vs resolvable {resolvable:.4f}."
  )


def findings(a) -> list[str]:
  """The thesis' findings this run's data can decide or not (one line each)."""
  return [x for x in (_rsa_finding(a), _noise_finding(a)) if x]


def section(d, a) -> None:
  """The report's "Published numbers" section (`d`: an `analysis.report.Doc`)."""
  d.h(2, "Published numbers (thesis, CNN study)")
  d.table(compare(a))
  d.p("Differences in setup that explain gaps:")
  d.ul(differences(a))


def report(workdir, tables) -> report_lib.Part:
  """This study's part of the standard report (which it needs: an evaluate section)."""
  a = tables.analysis
  if a is None:
    raise ValueError("study 'thesis' adds to the standard report: the config needs `evaluate`")
  return report_lib.Part("thesis", findings=tuple(findings(a)), section=lambda d: section(d, a))
