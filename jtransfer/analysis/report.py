"""report.md and report.html: a sequence of section renderers over the analysis tables
(`SECTIONS`), written into one `doc.Doc`."""

import dataclasses
import os
import pathlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from jtransfer.analysis import cluster_bootstrap, coverage, figures, power, signs, versus
from jtransfer.analysis.doc import CSS, Doc, cell  # noqa: F401 (CSS, Doc: part of the report API)
from jtransfer.store import results
from jtransfer.store import workdir as workdir_files

INTERVALS = (
  "Four intervals appear and mean different things: the **cluster bootstrap CI** (the default, "
  "shown in the grids) is the 2.5–97.5 percentile of ρ over resamples that draw whole clusters "
  "(sources when seeds are averaged, runs source × seed when kept; the shared step-0 model is "
  "one cluster) with replacement and keep every model of a drawn cluster — the checkpoints of "
  "one run are nested, not independent; the **null band** ±tanh(1.96/√(n−3)) is the thesis' "
  "'Fisher 95% interval' around 0 — it depends only on n and assumes independent models (kept "
  "as the thesis' reference); the **Bonett–Wright CI** is a Fisher-z interval around ρ; the "
  "**bootstrap CI** resamples single models. Significance is one-sided in the score's declared "
  "direction: `*` = the cluster CI lies above 0 (the null band when no cluster CI exists: "
  "fewer than 5 clusters); `†` = wrong direction (ρ significantly below 0: the score ranks "
  "models opposite to its declared direction), never starred."
)

PROBE_ORIGIN = {
  "train": "`train`: a balanced sample per class from the target's training split (jtransfer's "
  "default; the thesis took the first 50 per class of the TEST loader, so its scores saw test "
  "data, a leak this probe avoids)",
  "test": "`test`: from the target's test split, as the thesis (the scores see test data)",
  "heldout": "`heldout`: the same size from the other split than the main probe (the test split "
  "when the main probe is `train`: it reintroduces the test-data leak)",
}


def probe_origin(probes) -> str:
  """Where each probe of the run came from (the score job names a probe by its split)."""
  known = [PROBE_ORIGIN.get(p, f"`{p}`: origin not recorded by the score job") for p in probes]
  return "probes: " + "; ".join(known)


def _rho_cell(row) -> str:
  if not np.isfinite(row["spearman"]):
    return f"– ({row['flag']})" if row.get("flag") else "–"
  mark = "†" if row.get("wrong_direction", False) else "*" if row["significant"] else ""
  lo, hi = row.get("cluster_ci_lo", np.nan), row.get("cluster_ci_hi", np.nan)
  if not (np.isfinite(lo) and np.isfinite(hi)):
    lo, hi = row["spearman_ci_lo"], row["spearman_ci_hi"]  # Bonett–Wright when no clusters.
  return f"{row['spearman']:.2f}{mark} [{lo:.2f}, {hi:.2f}]"


def correlation_grid(a, target) -> pd.DataFrame:
  """Score × layer grid of "ρ* [BW lo, hi]" for the main setting and probe."""
  c = a.correlations
  c = c[
    (c["breakdown"] == "all")
    & (c["target"] == target)
    & (c["setting"] == a.setting)
    & (c["probe"] == a.probe)
  ]
  if c.empty:
    return pd.DataFrame()
  c = c.assign(cell=c.apply(_rho_cell, axis=1))
  wide = c.pivot_table(index="score", columns="layer", values="cell", aggfunc="first")
  wide = wide[[x for x in a.layers if x in wide.columns]]
  n = c.groupby("score")["n"].max()
  wide.insert(0, "n", n.astype(int))
  wide.insert(
    0,
    "dir",
    [
      ("↑" if a.overrides.get(s, signs.sign_table(a.overrides).get(s, True)) else "↓")
      for s in wide.index
    ],
  )
  return wide.reset_index()


def figure_index(figs: dict, workdir) -> list[str]:
  """One line per saved figure: its file (PNG, with the PDF beside it) and its caption."""
  return [
    f"`{os.path.relpath(p, workdir)}` — {figures.caption(p)}"
    for paths in figs.values()
    for p in paths
  ]


def _focus(df, a, **extra):
  m = (df["setting"] == a.setting) & (df["probe"] == a.probe) & (df["layer"] == a.focus_layer)
  for k, v in extra.items():
    m &= df[k] == v
  return df[m]


def per_checkpoint_table(a) -> pd.DataFrame:
  """Spearman ρ of each score over the sources at one schedule position (focus layer, main
  setting and probe): a row per (target, position) with the raw steps of that position."""
  f = _focus(a.correlations, a, breakdown="per_checkpoint")
  if f.empty or "steps" not in f:
    return pd.DataFrame()
  f = f.assign(position=f["group"].astype(int))
  keys = ["target", "position", "steps"]
  wide = f.groupby([*keys, "score"])["spearman"].first().unstack("score")
  wide.insert(0, "n", f.groupby(keys)["n"].max())
  return wide.reset_index().sort_values(["target", "position"], kind="stable")


def _diff(r) -> str:
  """The difference of one versus row with its interval; says why when there is none."""
  if np.isfinite(r.diff_lo) and np.isfinite(r.diff_hi):
    return f"{r.score} {r.diff:+.2f} [{r.diff_lo:+.2f}, {r.diff_hi:+.2f}]"
  return f"{r.score} {r.diff:+.2f} (no interval: {r.n_clusters} clusters)"


def baseline_sentences(a) -> list[str]:
  """Per target: which scores beat `checkpoint_index` at the focus layer, with the paired CI of
  the difference of ρ; said plainly when none does. Undefined comparisons are never wins."""
  v = a.versus_checkpoint
  if v is None or v.empty:
    return ["No checkpoint_index rows: the comparison could not be made."]
  v = v[v["layer"] == a.focus_layer]
  out = []
  for target in a.targets:
    t = v[v["target"] == target].sort_values("diff", ascending=False)
    if t.empty:
      continue
    rho_b = t["rho_baseline"].iloc[0]
    head = f"**{target}**: `checkpoint_index` alone has ρ = {cell(rho_b, 2)}"
    beats = t[t["verdict"] == versus.BEATS]
    unresolved = t[t["verdict"] == versus.UNRESOLVED]
    if beats.empty:
      text = f"{head}. No score beats it"
    else:
      text = f"{head}. Beat it (interval above 0): " + ", ".join(map(_diff, beats.itertuples()))
    if len(unresolved):
      text += "; higher but unresolved: " + ", ".join(map(_diff, unresolved.itertuples()))
    lower = t[t["verdict"] == versus.NOT_HIGHER]["score"]
    if len(lower):
      text += "; not higher: " + ", ".join(lower)
    undefined = t[t["verdict"] == versus.UNDEFINED]["score"]
    if len(undefined):
      text += "; undefined (not counted as wins): " + ", ".join(undefined)
    out.append(text + ".")
  return out


def leave_one_out_table(a) -> pd.DataFrame:
  """target | score | ρ | lowest ρ without one source (which) | highest (which)."""
  t = a.leave_one_source_out
  if t is None or t.empty or not np.isfinite(t["rho_min"]).any():
    return pd.DataFrame()
  t = t[np.isfinite(t["rho_min"])].sort_values(["target", "rho"], ascending=[True, False])
  return pd.DataFrame(
    {
      "target": t["target"],
      "score": t["score"],
      "ρ": t["rho"],
      "lowest ρ, one source out": t["rho_min"],
      "source out (lowest)": t["without_min"],
      "highest ρ, one source out": t["rho_max"],
      "source out (highest)": t["without_max"],
    }
  )


def within_position_sentences(a) -> list[str]:
  """Per target: the scores that rank models of equal pre-training length (Holm-adjusted
  permutation test within schedule positions), or that none does."""
  w = a.within_position
  if w is None or w.empty:
    return []
  out = []
  for target in a.targets:
    t = w[w["target"] == target].sort_values("rho_within", ascending=False)
    t = t[np.isfinite(t["rho_within"])]
    if t.empty:
      continue
    n_pos, n_within = int(t["n_positions"].max()), int(t["n_within"].max())
    head = (
      f"**{target}**, within a checkpoint position ({n_within} models in {n_pos} positions, "
      "seeds averaged): "
    )
    hits = t[t["p_holm"] < 0.05]
    cells = lambda r: f"{r.score} ρ = {r.rho_within:+.2f} (Holm p = {r.p_holm:.3f})"  # noqa: E731
    if hits.empty:
      best = t.iloc[0]
      out.append(
        head + "no score ranks them beyond their pre-training length at Holm-adjusted p < 0.05 "
        f"(best: {cells(best)})."
      )
    else:
      out.append(
        head
        + "ranked beyond pre-training length by "
        + ", ".join(map(cells, hits.itertuples()))
        + "."
      )
  return out


# -- sections ---------------------------------------------------------------------------------
# Each renders one part of the report from the analysis tables: `fn(d, a, page)`.


@dataclasses.dataclass(frozen=True)
class Part:
  """What one study adds to the standard report: lines for the answer and power sections, a
  section of its own (`section(d)`, at the end), and the files it wrote beside the report."""

  name: str
  findings: tuple[str, ...] = ()
  section: Callable[[Doc], None] | None = None
  files: tuple[pathlib.Path, ...] = ()


@dataclasses.dataclass(frozen=True)
class Page:
  """What a section needs beside the analysis: where the report goes, the studies' parts."""

  workdir: pathlib.Path
  parts: tuple[Part, ...] = ()


def _answer_cell(row) -> str:
  """ρ with its cluster interval; without one (too few clusters) no interval and no star: the
  Bonett–Wright fallback treats nested checkpoints as independent, too optimistic for a headline."""
  lo, hi = row.get("cluster_ci_lo", np.nan), row.get("cluster_ci_hi", np.nan)
  if np.isfinite(row["spearman"]) and not (np.isfinite(lo) and np.isfinite(hi)):
    return f"{row['spearman']:.2f} (no interval: {int(row.get('n_clusters', 0))} clusters)"
  return _rho_cell(row)


def answer_table(a) -> pd.DataFrame:
  """Per target: the three scores with the highest ρ at the focus layer, and the best baseline."""
  c = a.correlations
  if c is None or c.empty:
    return pd.DataFrame()
  c = c[(c["breakdown"] == "all") & (c["setting"] == a.setting) & (c["probe"] == a.probe)]
  rows = []
  for target in a.targets:
    t = c[(c["target"] == target) & np.isfinite(c["spearman"])]
    scores = t[(t["layer"] == a.focus_layer) & ~t["score"].isin(signs.BASELINES)]
    base = t[t["score"].isin(signs.BASELINES)].sort_values("spearman", ascending=False)
    best_base = base.iloc[0] if not base.empty else None
    for _, r in scores.sort_values("spearman", ascending=False).head(3).iterrows():
      rows.append(
        {
          "target": target,
          "score": r["score"],
          "n": int(r["n"]),
          "ρ [95% CI]": _answer_cell(r),
          "weighted τ": r.get("weighted_tau", np.nan),
          "best baseline": "" if best_base is None else str(best_base["score"]),
          "its ρ [95% CI]": "" if best_base is None else _answer_cell(best_base),
        }
      )
  return pd.DataFrame(rows)


def answer_section(d: Doc, a, page: Page) -> None:
  """First on the page: which scores predict transfer, how well, against what."""
  d.h(2, "The answer")
  d.p(
    f"Which scores predict transfer (log-AUC of fine-tuning, setting `{a.setting}`, probe "
    f"`{a.probe}`, layer {a.focus_layer}): the three with the highest Spearman ρ over all "
    "models, with their cluster-bootstrap interval (`*` = above 0), beside the best baseline."
  )
  d.table(answer_table(a), digits=2)
  d.ul(baseline_sentences(a) + within_position_sentences(a))
  for part in page.parts:
    if part.findings:
      d.p(f"Findings ({part.name}):")
      d.ul(list(part.findings))
  d.toc()


def setup_section(d: Doc, a, page: Page) -> None:
  d.h(2, "Setup")
  s = a.scores
  seeds_note = "kept as separate models" if a.keep_seeds else "averaged first, as the thesis"
  d.ul(
    [
      f"workdir: `{page.workdir}`",
      f"sources: {', '.join(sorted(set(s['source'])))}; architectures: "
      f"{', '.join(sorted(set(s['arch'].astype(str))))}",
      f"seeds: {s['seed'].nunique()} ({seeds_note}); pre-train checkpoints: {s['step'].nunique()}",
      f"targets: {', '.join(a.targets)}; transfer settings: {', '.join(a.settings)}; "
      f"probes: {', '.join(a.probes)}",
      f"layers: {', '.join(a.layers)}; focus layer: {a.focus_layer}",
      f"scores: {', '.join(sorted(set(s['score'])))}",
      f"main tables use setting `{a.setting}` and probe `{a.probe}`",
      probe_origin(a.probes),
      "ground truth: log-AUC = trapezoids of test accuracy over the fine-tune checkpoint index "
      "divided by K−1 (a mean accuracy over log-spaced steps), fine-tune seeds averaged; also "
      "final and best accuracy (analysis_ground_truth.csv)",
      f"bootstrap resamples: {a.n_boot}; parameter-count penalty λ = {a.param_penalty:g}",
    ]
  )


def ground_truth_section(d: Doc, a, page: Page) -> None:
  d.h(2, "Ground truth")
  gt = a.ground_truth
  gtm = gt[gt["setting"] == a.setting]
  gtm = gtm[gtm["step"] == gtm.groupby(["source", "arch"])["step"].transform("max")]
  summary = gtm.groupby(["target", "source"])[["log_auc", "final_acc", "best_acc"]].mean()
  d.p(
    f"Longest pre-training per source (scratch: no pre-training), setting `{a.setting}`, seed mean."
  )
  d.table(summary.reset_index())


FOCUS_COLUMNS = [
  "score", "n", "n_clusters", "spearman", "cluster_ci_lo", "cluster_ci_hi", "significant",
  "wrong_direction", "spearman_ci_lo", "spearman_ci_hi", "bootstrap_ci_lo", "bootstrap_ci_hi",
  "null_band_hi", "pearson", "kendall", "weighted_tau", "flag",
]  # fmt: skip


def coverage_sentence(a) -> str:
  """What the cluster intervals are worth at this run's layout: their simulated coverage."""
  c = a.correlations
  c = c[(c["breakdown"] == "all") & (c.get("n_clusters", 0) > 0)] if not c.empty else c
  if c.empty:
    return ""
  clusters = int(c["n_clusters"].max())
  if clusters < cluster_bootstrap.MIN_CLUSTERS:
    return f"With {clusters} clusters no cluster interval is computed."
  per = max(1, round(float(c.loc[c["n_clusters"] == clusters, "n"].max()) / clusters))
  r = coverage.simulate(clusters, per, n_boot=a.n_boot, n_sim=200, seed=0)
  verdict = (
    "close to nominal"
    if r["coverage"] >= 0.93
    else "below nominal: read them as narrower than 95 %"
  )
  return (
    f"Coverage at this run's layout ({clusters} clusters of about {per} models, {a.n_boot} "
    f"resamples): in 200 simulated runs with a known ρ = {r['rho']:.2f} "
    f"(`jtransfer.analysis.coverage`), the 95 % cluster interval held it in "
    f"{r['coverage']:.0%} ({verdict}; the simulation's own SE is about 1.5 points)."
  )


def correlation_section(d: Doc, a, page: Page) -> None:
  d.h(2, "Correlation of scores with log-AUC (all models)")
  d.p(INTERVALS)
  if sentence := coverage_sentence(a):
    d.p(sentence)
  d.p(
    "Cells: Spearman ρ of the oriented score (lower-is-better scores negated, `dir` ↓) with "
    "log-AUC, `*` = significant in the declared direction, `†` = wrong direction, [cluster "
    "bootstrap 95% CI] (Bonett–Wright where no cluster CI exists). Every interval, Pearson, "
    "Kendall τ-b and weighted τ for every cell are in analysis_correlations.csv."
  )
  for target in a.targets:
    d.h(3, f"Target {target}")
    d.table(correlation_grid(a, target))
    f = _focus(a.correlations, a, breakdown="all", target=target)
    if len(f):
      d.p(f"All statistics at the focus layer {a.focus_layer} (null band = ±null_band_hi):")
      d.table(f[FOCUS_COLUMNS], digits=3)


def breakdown_section(d: Doc, a, page: Page) -> None:
  d.h(2, "Breakdowns (thesis section 3.3)")
  d.p(
    "Median Spearman ρ over the groups of each breakdown at the focus layer (per source: the "
    "checkpoints of one source; per checkpoint: the sources at one schedule position, whatever "
    "its raw step in each source (analysis_correlations.csv `steps`); per ft step: "
    "accuracy at one fine-tune step instead of log-AUC); full tables in analysis_correlations.csv."
  )
  f = _focus(a.correlations, a)
  if len(f):
    med = f.pivot_table(
      index=["target", "score"], columns="breakdown", values="spearman", aggfunc="median"
    )
    d.table(med.reset_index(), digits=2)
  d.p(
    "Per checkpoint (thesis figs. 3.23 / 3.26): ρ over the sources at one schedule position; "
    "`steps` lists the raw pre-train steps of that position (they differ between sources whose "
    "epochs differ in length)."
  )
  d.table(per_checkpoint_table(a), digits=2)


def baselines_section(d: Doc, a, page: Page) -> None:
  d.h(2, "Baselines")
  d.p(
    "Each score's ρ beside the baselines' (checkpoint index = pre-training length, kNN accuracy "
    "on the probe, parameter count); ✓ = the score's point ρ is higher, ✗ = not higher, – = "
    "undefined (e.g. constant baseline). A ✓ is no claim that the score beats the baseline: "
    "that takes the paired interval below."
  )
  b = _focus(a.baselines, a, breakdown="all")
  if len(b):
    cols = ["target", "score", "spearman"] + [
      c for bl in signs.BASELINES for c in (f"spearman_{bl}", f"beats_{bl}")
    ]
    # Shown as "higher than": the point comparison, not the paired test of the sentences below.
    shown = {f"beats_{bl}": f"ρ higher than {bl}" for bl in signs.BASELINES}
    d.table(b[cols].rename(columns=shown), digits=2)
  d.p(
    "Against `checkpoint_index` (pre-training length alone), at the focus layer: the difference "
    "ρ(score) − ρ(checkpoint_index) on the same models, with a paired cluster-bootstrap 95% "
    "interval (analysis_versus_checkpoint.csv has every layer)."
  )
  d.ul(baseline_sentences(a))
  loso = leave_one_out_table(a)
  if not loso.empty:
    d.p(
      "Leaving one source out (focus layer): ρ over every model, and its lowest and highest "
      "value when one source's checkpoints are removed, with that source (the shared "
      "initialisation stays in; analysis_leave_one_source_out.csv)."
    )
    d.table(loso, digits=2)
  within = within_position_sentences(a)
  if within:
    d.p(
      "Beyond pre-training length: the Spearman ρ within each checkpoint position (models of "
      "equal pre-training length, where checkpoint_index explains nothing), weighted by the "
      "models in each, tested by permuting the score within positions "
      f"({versus.WITHIN_PERMUTATIONS} permutations) and Holm-adjusted over the scores "
      "(analysis_within_position.csv, with the partial ρ given the step)."
    )
    d.ul(within)


SELECTION_COLUMNS = [
  "target", "score", "n", "n_tied", "pick", "pick_truth", "best", "best_truth", "regret",
  "pick_rank", "top1_hit", "top3_hit", "wtau",
]  # fmt: skip


def selection_section(d: Doc, a, page: Page) -> None:
  d.h(2, "Model selection")
  d.p(
    "Top-1 pick of each score over all models: regret = best achievable log-AUC − the pick's; "
    "pick_rank = the pick's rank by log-AUC (1 = best); top1_hit / top3_hit = the probability "
    "that a best model is the pick / among the score's top 3, ties in the score broken at "
    "random (a score that ties all n models gets 1/n and 3/n; `tie of n` names no pick); "
    "wtau = weighted Kendall τ, hyperbolic weights on the log-AUC ranks (the best models count "
    "most). Per-checkpoint: picking a source at one schedule position (mean over positions; "
    "the raw steps of a position differ between sources with different epoch lengths)."
  )
  sel = _focus(a.selection, a, breakdown="all")
  if len(sel):
    d.table(sel[SELECTION_COLUMNS])
  pc = _focus(a.selection, a, breakdown="per_checkpoint")
  if len(pc):
    agg = pc.groupby(["target", "score"]).agg(
      mean_regret=("regret", "mean"),
      top1_rate=("top1_hit", "mean"),
      top3_rate=("top3_hit", "mean"),
      mean_wtau=("wtau", "mean"),
    )
    d.table(agg.reset_index())


def probes_section(d: Doc, a, page: Page) -> None:
  if len(a.probes) <= 1:
    return
  d.h(2, "Training probe vs held-out probe")
  d.p("The NC paper asks for scores that use held-out data too; ρ (all models) per probe:")
  f = a.correlations
  f = f[(f["breakdown"] == "all") & (f["setting"] == a.setting) & (f["layer"] == a.focus_layer)]
  d.table(
    f.pivot_table(index=["target", "score"], columns="probe", values="spearman").reset_index(),
    digits=2,
  )


def penalty_section(d: Doc, a, page: Page) -> None:
  if not a.param_penalty:
    return
  d.h(2, "Parameter-count penalty")
  pen = [x for x in set(a.scores["score"]) if "-pc" in x]
  if not pen:
    d.p("No param_count rows in the store: the penalty could not be applied.")
    return
  d.p(
    f"Penalised score = z(score) − {a.param_penalty:g}·z(log parameter count) over the models "
    "of a context (NC paper: prefer the smaller model at similar scores). With a single "
    "architecture the penalty is zero and the rows equal the originals."
  )
  f = _focus(a.correlations, a, breakdown="all")
  d.table(f[f["score"].str.contains("-pc")][["target", "score", "spearman", "n"]], digits=3)


def power_section(d: Doc, a, page: Page) -> None:
  """What differences the run can resolve, and which findings (the studies' first) it can
  decide."""
  d.h(2, "Power: what this run can resolve")
  d.p(
    "Per headline ρ (all models, focus layer): `rho_halfwidth` = half the cluster-bootstrap "
    "interval (differences of ρ smaller than this are within the run's noise); "
    "`diff_halfwidth` = half the paired interval of ρ − ρ(checkpoint_index)."
  )
  d.table(a.power_rho, digits=3)
  d.p(
    "Seed-to-seed spread of log-AUC: σ_s = RMS over models of the SD over seeds, k seeds; two "
    "sources whose seed-mean log-AUCs differ by less than 1.96·σ_s·√(2/k) cannot be ranked."
  )
  d.table(a.power_seeds, digits=4)
  lines = [x for part in page.parts for x in part.findings] + power.findings(a)
  d.p("Thesis findings this run can and cannot decide:")
  d.ul(lines or ["none of the thesis' findings can be checked with this run's sources/targets."])


def stability_section(d: Doc, a, page: Page) -> None:
  d.h(2, "Stability across setups (Agostinelli et al.)")
  d.p(
    "Model ranking: Kendall τ-b between a score's rankings of the same models in two setups "
    "that differ only along `axis`, and how often its top-1 pick stays the same."
  )
  d.table(a.stability_models, digits=2)
  d.p("Spread of each score's ρ along each axis (mean and max range of ρ over the other setups):")
  d.table(a.stability_rho, digits=2)
  d.p("Which score wins (highest ρ, baselines excluded) and how often the winner flips:")
  d.table(a.stability_winner, digits=2)


def transfer_matrix_section(d: Doc, a, page: Page) -> None:
  d.h(2, "Layer-wise transfer matrix (gradual transfer)")
  if a.transfer_matrix.empty:
    d.p("No frozen-layer settings stored.")
    return
  m = a.transfer_matrix.assign(
    pair=lambda x: x["source"] + " → " + x["target"],
    frozen=lambda x: "frozen " + x["frozen"].astype(int).astype(str),
  )
  d.table(m.pivot_table(index="pair", columns="frozen", values="final_acc").reset_index())
  d.p(
    "Asymmetry per frozen count: drop(A→B) − drop(B→A) relative to the self-transfers where "
    "those exist, else the raw difference of final accuracies."
  )
  d.table(a.asymmetry)


def figures_section(d: Doc, a, page: Page) -> None:
  if a.figures:
    d.h(2, "Figure index")
    d.ul(figure_index(a.figures, page.workdir))
  d.h(2, "Figures")
  for paths in a.figures.values():
    for p in paths:
      d.img(os.path.relpath(p, page.workdir), f"{figures.caption(p)} ({pathlib.Path(p).stem})")


def studies_section(d: Doc, a, page: Page) -> None:
  for part in page.parts:
    if part.section is not None:
      part.section(d)


def notes_section(d: Doc, a, page: Page) -> None:
  failures_section(d, page.workdir)
  if a.notes:
    d.h(2, "Notes")
    d.ul(a.notes)


SECTIONS = (
  answer_section,
  setup_section,
  ground_truth_section,
  correlation_section,
  breakdown_section,
  baselines_section,
  selection_section,
  probes_section,
  penalty_section,
  power_section,
  stability_section,
  transfer_matrix_section,
  figures_section,
  studies_section,
  notes_section,
)


FILES = ("report.md", "report.html")


def remove(workdir) -> None:
  """Deletes the report before its tables are rewritten: a run killed part-way then leaves no
  report that disagrees with the CSVs (the rerun writes it)."""
  for name in FILES:
    (pathlib.Path(workdir) / name).unlink(missing_ok=True)


def write(a, workdir, *, parts: Sequence[Part] = ()) -> pathlib.Path:
  """report.md and report.html in `workdir`: every section of `SECTIONS` in order, with the
  studies' `parts`."""
  page = Page(pathlib.Path(workdir), tuple(parts))
  d = Doc()
  d.h(1, "jtransfer evaluation report")
  for section in SECTIONS:
    section(d, a, page)
  md, html = (page.workdir / name for name in FILES)
  for path, text in ((md, d.markdown()), (html, d.html("jtransfer report"))):
    with workdir_files.replaced_whole(path) as tmp:
      tmp.write_text(text, encoding="utf-8")
  return md


def failures_section(d: Doc, workdir) -> None:
  """Checkpoints a job could not use (e.g. corrupt): listed, so a gap in the tables is never
  silent. Nothing when there are none."""
  try:
    failed = results.load(workdir, "failures")
  except FileNotFoundError:
    return
  if failed.empty:
    return
  d.h(2, "Failed checkpoints")
  d.p(
    f"{len(failed)} (job, checkpoint, target) could not be used and have no rows in the "
    "tables above; a rerun of the job retries them."
  )
  d.table(failed[["job", "source", "arch", "seed", "step", "target", "error"]])
