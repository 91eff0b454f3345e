"""Figures of the report (matplotlib, Agg): each saved as PNG and PDF; functions return PNG paths.

Modelled on the thesis' figures 3.2-3.8 and 3.21-3.28 and the NC paper's figures 2-3.
"""

import math
import pathlib
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from jtransfer.analysis import signs  # noqa: E402
from jtransfer.analysis.stats import null_band  # noqa: E402


def _slug(*parts) -> str:
  return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "_".join(str(p) for p in parts if p is not None))


def _save(fig, out_dir: pathlib.Path, name: str) -> pathlib.Path:
  out_dir.mkdir(parents=True, exist_ok=True)
  png = out_dir / f"{name}.png"
  fig.savefig(png, dpi=110)  # constrained_layout already fits
  fig.savefig(out_dir / f"{name}.pdf")
  plt.close(fig)
  return png


def source_colors(sources) -> dict:
  cmap = plt.get_cmap("tab10")
  return {s: cmap(i % 10) for i, s in enumerate(sorted(set(sources)))}


def _grid(n: int, ncols: int = 4, size=(3.6, 2.8)):
  ncols = max(1, min(ncols, n))
  nrows = math.ceil(n / ncols)
  fig, axes = plt.subplots(
    nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, constrained_layout=True
  )
  for ax in axes.flat[n:]:
    ax.set_visible(False)
  return fig, list(axes.flat)


def _arrow(score: str, overrides=None) -> str:
  table = signs.sign_table(overrides)
  return "" if score not in table else (" (↑ better)" if table[score] else " (↓ better)")


def score_vs_layer(
  scores: pd.DataFrame, out_dir, *, layers: list[str], probe: str, overrides=None
) -> list[pathlib.Path]:
  """Per score: raw value vs layer, one line per source at its longest pre-training, mean ± 2σ
  over seeds; one panel per target (thesis figs. 3.2-3.4)."""
  out_dir = pathlib.Path(out_dir)
  df = scores[(scores["probe"] == probe) & ~scores["score"].isin(signs.BASELINES)]
  df = df[~df["score"].str.contains("-pc", regex=False)]  # Penalised z-scores: not a raw score.
  df = df[df["step"] == df.groupby(["source", "arch"])["step"].transform("max")]
  colors = source_colors(scores["source"])
  paths = []
  for score, sgrp in df.groupby("score"):
    targets = sorted(set(sgrp["target"]))
    fig, axes = _grid(len(targets), ncols=len(targets), size=(4.4, 3.2))
    for ax, target in zip(axes, targets, strict=False):
      tgrp = sgrp[sgrp["target"] == target]
      for source, g in tgrp.groupby("source"):
        per_layer = (
          g.groupby("layer")["value"].agg(["mean", "std"]).reindex(layers).dropna(how="all")
        )
        x = [layers.index(lay) for lay in per_layer.index]
        mean = per_layer["mean"].to_numpy()
        sd = np.nan_to_num(per_layer["std"].to_numpy())
        ax.plot(x, mean, marker="o", color=colors[source], label=source)
        ax.fill_between(x, mean - 2 * sd, mean + 2 * sd, color=colors[source], alpha=0.15)
      ax.set_xticks(range(len(layers)), layers, rotation=45)
      ax.set_title(f"target {target}")
      ax.set_ylabel(score + _arrow(score, overrides))
      ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{score} per layer, longest pre-training, mean ± 2σ over seeds (probe {probe})")
    paths.append(_save(fig, out_dir, _slug("score_vs_layer", score, probe)))
  return paths


def _step_alpha(steps) -> dict:
  steps = sorted(set(steps))
  return {s: 0.15 + 0.85 * (i + 1) / len(steps) for i, s in enumerate(steps)}


def _log_steps(ax, ft_steps):
  ax.set_xscale("log")
  ticks = sorted(set(ft_steps))
  ax.set_xticks([t + 1 for t in ticks], [str(t) for t in ticks], rotation=45, fontsize=7)
  ax.minorticks_off()
  ax.set_xlabel("fine-tune step (batches, log axis at step + 1)")


def _mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
  return curves.groupby(["source", "arch", "step", "ft_step"])["test_acc"].agg(["mean", "std"])


def finetune_curves(curves: pd.DataFrame, out_dir, *, setting: str) -> list[pathlib.Path]:
  """Per target: accuracy vs fine-tune step (log axis), one line per (source, pre-train step),
  later checkpoints darker, the longest thick; scratch in grey (thesis figs. 3.5, 3.7)."""
  out_dir = pathlib.Path(out_dir)
  colors = source_colors(curves.loc[curves["source"] != "scratch", "source"])
  paths = []
  for target, tgrp in curves[curves["setting"] == setting].groupby("target"):
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    zoo = tgrp[tgrp["source"] != "scratch"]
    for source, sgrp in zoo.groupby("source"):
      alpha = _step_alpha(sgrp["step"])
      last = max(alpha)
      for step, g in sgrp.groupby("step"):
        m = g.groupby("ft_step")["test_acc"].mean()
        ax.plot(
          m.index + 1,
          m.to_numpy(),
          color=colors[source],
          alpha=alpha[step],
          lw=2.2 if step == last else 0.8,
          label=source if step == last else None,
        )
    scratch = tgrp[tgrp["source"] == "scratch"]
    if not scratch.empty:
      m = scratch.groupby("ft_step")["test_acc"].mean()
      ax.plot(m.index + 1, m.to_numpy(), color="0.4", ls="--", lw=2, label="scratch")
    _log_steps(ax, tgrp["ft_step"])
    ax.set_ylabel("test accuracy")
    ax.set_title(f"fine-tuning on {target} ({setting}); darker = longer pre-training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    paths.append(_save(fig, out_dir, _slug("finetune_curves", target, setting)))
  return paths


def delta_to_scratch(curves: pd.DataFrame, out_dir, *, setting: str) -> list[pathlib.Path]:
  """Per target: accuracy minus the scratch baseline's mean, scratch ± 2σ over seeds shaded
  (thesis figs. 3.6, 3.8). Nothing when no scratch rows exist."""
  out_dir = pathlib.Path(out_dir)
  colors = source_colors(curves.loc[curves["source"] != "scratch", "source"])
  paths = []
  for target, tgrp in curves[curves["source"] == "scratch"].groupby("target"):
    # Scratch under this setting if stored, else under any (it has no backbone to freeze).
    own = tgrp[tgrp["setting"] == setting]
    scratch = own if not own.empty else tgrp
    per_seed = scratch.groupby(["seed", "ft_step"])["test_acc"].mean().unstack("ft_step")
    base = per_seed.mean(axis=0)
    sd = per_seed.std(axis=0, ddof=1).fillna(0.0)
    zoo = curves[
      (curves["target"] == target)
      & (curves["setting"] == setting)
      & (curves["source"] != "scratch")
    ]
    if zoo.empty:
      continue
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    ax.fill_between(base.index + 1, -2 * sd, 2 * sd, color="0.6", alpha=0.35, label="scratch ± 2σ")
    ax.axhline(0, color="0.4", lw=1)
    for source, sgrp in zoo.groupby("source"):
      alpha = _step_alpha(sgrp["step"])
      last = max(alpha)
      for step, g in sgrp.groupby("step"):
        m = g.groupby("ft_step")["test_acc"].mean()
        common = m.index.intersection(base.index)
        ax.plot(
          common + 1,
          (m[common] - base[common]).to_numpy(),
          color=colors[source],
          alpha=alpha[step],
          lw=2.2 if step == last else 0.8,
          label=source if step == last else None,
        )
    _log_steps(ax, tgrp["ft_step"])
    ax.set_ylabel("Δ accuracy to scratch")
    ax.set_title(f"{target} ({setting}): accuracy minus training from scratch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    paths.append(_save(fig, out_dir, _slug("delta_to_scratch", target, setting)))
  return paths


def rho_per_layer(
  corr: pd.DataFrame, out_dir, *, breakdown: str, target: str, setting: str, probe: str, layers
) -> pathlib.Path | None:
  """Spearman ρ vs layer, one panel per score; the thesis' null band (grey) for the panel's
  typical n; Bonett–Wright 95% intervals as error bars for the "all" breakdown."""
  c = corr[
    (corr["breakdown"] == breakdown)
    & (corr["target"] == target)
    & (corr["setting"] == setting)
    & (corr["probe"] == probe)
  ]
  if c.empty:
    return None
  defined = c.groupby("score")["spearman"].apply(lambda r: np.isfinite(r).any())
  scores = sorted(defined.index[defined])  # A constant baseline has no ρ anywhere: no panel.
  if not scores:
    return None
  fig, axes = _grid(len(scores))
  groups = list(dict.fromkeys(c.sort_values("group", key=_group_key)["group"]))
  cmap = plt.get_cmap("viridis")
  colors = source_colors(groups) if breakdown == "per_source" else None
  for ax, score in zip(axes, scores, strict=False):
    sc = c[c["score"] == score]
    n = int(np.nanmedian(sc["n"])) if len(sc) else 0
    lo, hi = null_band(n)
    if np.isfinite(hi):
      ax.axhspan(lo, hi, color="0.8", alpha=0.6, label=f"null band n={n}")
    for i, grp_name in enumerate(groups):
      g = sc[sc["group"] == grp_name].set_index("layer").reindex(layers).dropna(subset=["n"])
      x = [layers.index(lay) for lay in g.index]
      if breakdown == "all":
        err = np.vstack([g["spearman"] - g["spearman_ci_lo"], g["spearman_ci_hi"] - g["spearman"]])
        ax.errorbar(x, g["spearman"], yerr=np.abs(err), marker="o", capsize=3, label="all models")
      elif colors is not None:
        ax.plot(x, g["spearman"], marker="o", color=colors[grp_name], label=grp_name)
      else:
        frac = (i + 1) / len(groups)
        ax.plot(
          x, g["spearman"], marker=".", color=cmap(frac), alpha=0.3 + 0.7 * frac, label=grp_name
        )
    ax.set_xticks(range(len(layers)), layers, rotation=45, fontsize=7)
    ax.set_ylim(-1.05, 1.05)
    ax.set_title(score, fontsize=9)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("Spearman ρ (score oriented ↑)")
  axes[0].legend(fontsize=6)
  fig.suptitle(f"ρ per layer — {breakdown}, target {target}, {setting}, probe {probe}")
  return _save(
    fig, pathlib.Path(out_dir), _slug("rho_per_layer", breakdown, target, setting, probe)
  )


def _group_key(s: pd.Series) -> pd.Series:
  num = pd.to_numeric(s, errors="coerce")
  return num.fillna(np.inf) if num.notna().any() else s


def scatter(
  joint: pd.DataFrame,
  out_dir,
  *,
  target: str,
  setting: str,
  probe: str,
  layer: str,
  truth: str = "log_auc",
  overrides=None,
) -> pathlib.Path | None:
  """Score (raw value) vs ground truth, one panel per score, coloured by source, Pearson r and
  Spearman ρ (oriented) in the title (NC paper figs. 2-3)."""
  j = joint[
    (joint["target"] == target)
    & (joint["setting"] == setting)
    & (joint["probe"] == probe)
    & (joint["layer"] == layer)
  ]
  if j.empty:
    return None
  scores = sorted(set(j["score"]))
  colors = source_colors(joint["source"])
  fig, axes = _grid(len(scores))
  for ax, score in zip(axes, scores, strict=False):
    g = j[j["score"] == score]
    for source, sg in g.groupby("source"):
      ax.scatter(sg["value"], sg[truth], s=14, color=colors[source], label=source, alpha=0.8)
    x, y = g["value"].to_numpy(float), g[truth].to_numpy(float)
    title = score + _arrow(score, overrides)
    if len(g) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
      r = stats.pearsonr(x, y).statistic
      rho = stats.spearmanr(g["oriented"], y).statistic
      title += f"\nPearson r = {r:.2f}, ρ = {rho:.2f}"
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("score", fontsize=7)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel(truth)
  axes[0].legend(fontsize=6)
  fig.suptitle(f"score vs {truth} — target {target}, {setting}, layer {layer}, probe {probe}")
  return _save(fig, pathlib.Path(out_dir), _slug("scatter", target, setting, layer, probe))


def transfer_heatmap(matrix: pd.DataFrame, out_dir, *, value: str = "final_acc"):
  """Rows source → target, columns number of frozen layers, cells `value` (annotated)."""
  if matrix.empty:
    return None
  m = matrix.copy()
  m["pair"] = m["source"] + " → " + m["target"]
  wide = m.pivot_table(index="pair", columns="frozen", values=value, aggfunc="mean")
  fig, ax = plt.subplots(
    figsize=(max(5.5, 3.0 + 0.9 * wide.shape[1]), 1.0 + 0.42 * wide.shape[0]),
    constrained_layout=True,
  )
  im = ax.imshow(wide.to_numpy(), aspect="auto", cmap="viridis")
  ax.set_xticks(range(wide.shape[1]), [f"{int(c)}" for c in wide.columns])
  ax.set_yticks(range(wide.shape[0]), wide.index, fontsize=8)
  ax.set_xlabel("frozen layers (0 = full fine-tune)")
  vals = wide.to_numpy()
  mid = np.nanmean([np.nanmin(vals), np.nanmax(vals)])
  for (i, k), v in np.ndenumerate(vals):
    if np.isfinite(v):
      color = "k" if v > mid else "w"  # readable on both ends of viridis
      ax.text(k, i, f"{v:.3f}", ha="center", va="center", fontsize=7, color=color)
  fig.colorbar(im, ax=ax, label=value)
  ax.set_title(f"gradual transfer: {value}")
  return _save(fig, pathlib.Path(out_dir), _slug("transfer_matrix", value))
