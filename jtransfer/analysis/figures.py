"""Figures of the report (matplotlib, Agg): each saved as PNG and PDF; functions return PNG paths.

Modelled on the thesis' figures 3.2-3.8 and 3.21-3.28 and the NC paper's figures 2-3. Every figure
names scores by their display names with the declared direction (labels.py), keeps layer-free
scores (stored at layer "-": LEEP, NCE, parameter count) off the layer axis, states its sign
convention in a caption line at the bottom, and is tidied before saving so that no text leaves
the canvas and no two tick labels collide.
"""

import functools
import math
import pathlib
import re
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy import stats  # noqa: E402

from jtransfer.analysis import labels, signs  # noqa: E402
from jtransfer.analysis.stats import null_band  # noqa: E402
from jtransfer.scores import REGISTRY  # noqa: E402
from jtransfer.scores.registry import CHECKPOINT_BASELINES  # noqa: E402
from jtransfer.store import results  # noqa: E402

DPI = 110
LAYER_FREE = results.LAYERLESS
SIGN_NOTE = (
  "r, ρ: of the oriented score (negated when ↓ better) with {truth}; "
  "positive = the score agrees with transfer in its declared direction"
)

# One-line captions for the report, by file-name prefix (longest prefix wins).
CAPTIONS = {
  "score_vs_layer": "score value per layer and source, longest pre-training, mean ± 2σ over seeds",
  "score_layer_free": "layer-free scores (LEEP, NCE, …) per target and source, longest "
  "pre-training, mean ± 2σ over seeds",
  "finetune_curves": "fine-tune test accuracy vs step (log axis), darker = longer pre-training, "
  "scratch dashed",
  "delta_to_scratch": "accuracy minus training from scratch, scratch ± 2σ over seeds shaded",
  "rho_per_layer": "Spearman ρ per layer, oriented (+ = agrees with transfer in the score's "
  "direction), null band grey, layer-free scores in their own panel",
  "scatter": "score vs log-AUC at the focus layer, layer-free scores beside; r and ρ oriented "
  "(+ = agrees with transfer in the score's direction)",
  "transfer_matrix": "final accuracy vs number of frozen layers (gradual transfer)",
}


def caption(path) -> str:
  """The one-line caption of a saved figure, from its file name."""
  stem = pathlib.Path(path).stem
  kinds = sorted((k for k in CAPTIONS if stem.startswith(k)), key=len, reverse=True)
  return CAPTIONS[kinds[0]] if kinds else stem.replace("_", " ")


def _slug(*parts) -> str:
  return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "_".join(str(p) for p in parts if p is not None))


def _wrap(text: str, width_in: float, fontsize: float) -> str:
  """Wraps to the characters that fit `width_in` inches (an average glyph is ~0.6 em wide)."""
  chars = max(20, int(width_in * 72 / (0.6 * fontsize)))
  return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def _titles(fig, title: str, note: str | None = None):
  """Suptitle on top and a small caption line at the bottom, both wrapped to the figure width
  (constrained layout reserves room for both)."""
  width = fig.get_figwidth() * 0.95
  fig.suptitle(_wrap(title, width, 11), fontsize=11)
  if note:
    fig.supxlabel(_wrap(note, width, 7.5), fontsize=7.5, color="0.3")


def _drawn_ticklabels(axis) -> list:
  """Tick labels matplotlib draws on `axis` (inside the view limits, visible, non-empty)."""
  return [
    t.label1
    for t in axis._update_ticks()  # noqa: SLF001 - the public getters include undrawn ticks
    if t.label1.get_visible() and t.label1.get_text()
  ]


def _overlapping(texts, renderer) -> bool:
  boxes = [t.get_window_extent(renderer) for t in texts]
  return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def _thin(texts, renderer):
  """Hides labels that collide with one already kept, walking from the last (the final
  fine-tune step, the deepest layer) so the end of the axis keeps its label."""
  kept = []
  for t in reversed(texts):
    box = t.get_window_extent(renderer)
    if any(box.overlaps(k) for k in kept):
      t.set_visible(False)
    else:
      kept.append(box)


def _offset_words(text: str) -> str:
  """ScalarFormatter's "1e−3+1.2345e4" (scale, then offset; either may be absent) in words."""
  m = re.fullmatch(r"(1e[−-]?\d+)?\s*(?:([+−-])\s*(\S+))?", text.strip())
  if not m or not (m[1] or m[3]):
    return f"axis offset {text}"
  parts = [f"× {m[1]}"] if m[1] else []
  parts += [f"{'+' if m[2] == '+' else '−'} {m[3]}"] if m[3] else []
  return "value = tick " + " ".join(parts)


def _tidy(fig):
  """Lays the figure out at the saving dpi, moves axis offsets into the axis labels, then turns
  colliding slanted x tick labels upright and thins any labels that still collide."""
  fig.set_dpi(DPI)
  fig.canvas.draw()
  renderer = fig.canvas.get_renderer()
  changed = False
  for ax in fig.axes:
    for axis in (ax.xaxis, ax.yaxis):
      # An offset ("1e-3 + 1.2e4") floats at the axis end, over the neighbour's labels: it goes
      # into the axis label instead.
      offset = axis.get_offset_text()
      if ax.get_visible() and ax.axison and offset.get_visible() and offset.get_text():
        axis.set_label_text(f"{axis.get_label_text()}\n({_offset_words(offset.get_text())})")
        offset.set_visible(False)
        changed = True
  if changed:
    fig.canvas.draw()
    changed = False
  for ax in fig.axes:
    if not (ax.get_visible() and ax.axison):
      continue
    xs = _drawn_ticklabels(ax.xaxis)
    # Slanted names (layers, scores) stand upright; numbers are thinned below instead.
    if any(t.get_rotation() for t in xs) and _overlapping(xs, renderer):
      for t in xs:
        t.set_rotation(90)
        t.set_horizontalalignment("center")
        t.set_rotation_mode("default")
      changed = True
  if changed:
    fig.canvas.draw()
  for ax in fig.axes:
    if ax.get_visible() and ax.axison:
      for axis in (ax.xaxis, ax.yaxis):
        texts = _drawn_ticklabels(axis)
        if _overlapping(texts, renderer):
          _thin(texts, renderer)
  return fig  # savefig draws it once more, with the thinned labels


def _save(fig, out_dir: pathlib.Path, name: str) -> pathlib.Path:
  out_dir.mkdir(parents=True, exist_ok=True)
  _tidy(fig)
  png = out_dir / f"{name}.png"
  fig.savefig(png, dpi=DPI)  # constrained_layout already fits
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


def _legend(fig, axes, n_panels: int, title: str | None = None):
  """The first panel's legend, off the data: in the grid's first empty slot, else outside on
  the right."""
  handles, names = axes[0].get_legend_handles_labels()
  if not handles:
    return
  if n_panels < len(axes):
    slot = axes[n_panels]
    slot.set_visible(True)
    slot.axis("off")
    slot.legend(handles, names, loc="center", fontsize=7, title=title, title_fontsize=8)
  else:
    fig.legend(handles, names, loc="outside right upper", fontsize=7, title=title)


def _layer_axis(layers) -> list[str]:
  return [x for x in layers if x not in LAYER_FREE]


# Scores that belong to a checkpoint, not a layer: the analysis tables copy them onto every
# layer (`tables.spread_layerless`), so they are recognised by name as well as by placeholder.
_CHECKPOINT_SCORES = {n for n, s in REGISTRY.items() if not s.needs_features} | set(
  CHECKPOINT_BASELINES
)


def _layer_free_scores(df: pd.DataFrame) -> set[str]:
  """Scores stored only at the layer-free placeholder, or known to have no layer."""
  at = df.groupby("score")["layer"].agg(lambda s: set(s) <= set(LAYER_FREE))
  return set(at.index[at]) | (_CHECKPOINT_SCORES & set(df["score"]))


def _layer_free_rows(df: pd.DataFrame, free: set[str]) -> pd.DataFrame:
  """The rows of the layer-free scores, once: the spread copies of one layer per score."""
  g = df[df["score"].isin(free)]
  return g[g["layer"] == g.groupby("score")["layer"].transform("min")]


def _layer_ticks(ax, layers, fontsize=8):
  ax.set_xticks(
    range(len(layers)), layers, rotation=45, ha="right", rotation_mode="anchor", fontsize=fontsize
  )
  ax.tick_params(axis="x", pad=1)


def _longest(df: pd.DataFrame) -> pd.DataFrame:
  return df[df["step"] == df.groupby(["source", "arch"])["step"].transform("max")]


def score_vs_layer(
  scores: pd.DataFrame, out_dir, *, layers: list[str], probe: str, overrides=None
) -> list[pathlib.Path]:
  """Per score: raw value vs layer, one line per source at its longest pre-training, mean ± 2σ
  over seeds; one panel per target (thesis figs. 3.2-3.4). Layer-free scores get one figure of
  their own (`score_layer_free_<probe>`), a panel per score with the targets on the x axis."""
  out_dir = pathlib.Path(out_dir)
  df = scores[(scores["probe"] == probe) & ~scores["score"].isin(signs.BASELINES)]
  df = df[~df["score"].str.contains("-pc", regex=False)]  # Penalised z-scores: not a raw score.
  df = _longest(df)
  colors = source_colors(scores["source"])
  free = _layer_free_scores(df)
  axis_layers = _layer_axis(layers)
  paths = []
  for score, sgrp in df[~df["score"].isin(free)].groupby("score"):
    sgrp = sgrp[~sgrp["layer"].isin(LAYER_FREE)]
    targets = sorted(set(sgrp["target"]))
    fig, axes = _grid(len(targets), ncols=min(len(targets), 3), size=(4.4, 3.2))
    for ax, target in zip(axes, targets, strict=False):
      tgrp = sgrp[sgrp["target"] == target]
      for source, g in tgrp.groupby("source"):
        per_layer = (
          g.groupby("layer")["value"].agg(["mean", "std"]).reindex(axis_layers).dropna(how="all")
        )
        x = [axis_layers.index(lay) for lay in per_layer.index]
        mean = per_layer["mean"].to_numpy()
        sd = np.nan_to_num(per_layer["std"].to_numpy())
        ax.plot(x, mean, marker="o", color=colors[source], label=source)
        ax.fill_between(x, mean - 2 * sd, mean + 2 * sd, color=colors[source], alpha=0.15)
      _layer_ticks(ax, axis_layers)
      ax.set_title(_wrap(f"target {target}", 4.2, 10), fontsize=10)
      ax.set_xlabel("layer", fontsize=8)
      ax.set_ylabel(labels.axis_label(score, overrides), fontsize=8)
      ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    _titles(
      fig,
      f"{labels.display_name(score)} per layer",
      f"longest pre-training per source; line = mean over seeds, band = ±2σ; probe {probe}",
    )
    paths.append(_save(fig, out_dir, _slug("score_vs_layer", score, probe)))
  if free:
    paths.append(_layer_free_figure(_layer_free_rows(df, free), out_dir, probe, colors, overrides))
  return paths


def _layer_free_figure(df, out_dir, probe, colors, overrides) -> pathlib.Path:
  names = sorted(set(df["score"]))
  targets = sorted(set(df["target"]))
  sources = sorted(set(df["source"]))
  fig, axes = _grid(len(names), ncols=3, size=(max(3.6, 1.4 + 1.1 * len(targets)), 3.2))
  width = 0.6 / max(1, len(sources))
  for ax, score in zip(axes, names, strict=False):
    g = df[df["score"] == score].groupby(["target", "source"])["value"].agg(["mean", "std"])
    for k, source in enumerate(sources):
      rows = [(i, g.loc[(t, source)]) for i, t in enumerate(targets) if (t, source) in g.index]
      if not rows:
        continue
      x = np.array([i for i, _ in rows]) + (k - (len(sources) - 1) / 2) * width
      mean = np.array([r["mean"] for _, r in rows])
      sd = np.nan_to_num(np.array([r["std"] for _, r in rows]))
      ax.errorbar(x, mean, yerr=2 * sd, fmt="o", capsize=3, color=colors[source], label=source)
    ax.set_xticks(range(len(targets)), [_wrap(t, 1.1, 8) for t in targets], fontsize=8)
    ax.set_xlim(-0.6, len(targets) - 0.4)
    ax.set_xlabel("target", fontsize=8)
    ax.set_ylabel(labels.axis_label(score, overrides), fontsize=8)
    ax.set_title(labels.display_name(score), fontsize=10)
    ax.grid(alpha=0.3, axis="y")
  axes[0].legend(fontsize=7)
  _titles(
    fig,
    "Layer-free scores",
    f"longest pre-training per source; point = mean over seeds, bar = ±2σ; probe {probe}",
  )
  return _save(fig, pathlib.Path(out_dir), _slug("score_layer_free", probe))


def _step_alpha(steps) -> dict:
  steps = sorted(set(steps))
  return {s: 0.15 + 0.85 * (i + 1) / len(steps) for i, s in enumerate(steps)}


def _log_steps(ax, ft_steps):
  ax.set_xscale("log")
  ticks = sorted(set(ft_steps))
  ax.set_xticks([t + 1 for t in ticks], [str(t) for t in ticks], fontsize=8)
  ax.minorticks_off()
  ax.set_xlabel("fine-tune step (batches; log axis at step + 1)")


def _xy(m: pd.Series):
  return m.index + 1, m.to_numpy()


def _minus(base: pd.Series, m: pd.Series):
  """The accuracy curve `m` minus `base` at the fine-tune steps both have."""
  common = m.index.intersection(base.index)
  return common + 1, (m[common] - base[common]).to_numpy()


def _checkpoint_lines(ax, zoo: pd.DataFrame, colors, *, to_xy=_xy) -> None:
  """One line of fine-tune accuracy per (source, pre-train step), seed mean: later checkpoints
  darker, the longest thick and labelled; `to_xy(curve)` gives the points drawn."""
  for source, sgrp in zoo.groupby("source"):
    alpha = _step_alpha(sgrp["step"])
    last = max(alpha)
    for step, g in sgrp.groupby("step"):
      x, y = to_xy(g.groupby("ft_step")["test_acc"].mean())
      ax.plot(
        x,
        y,
        color=colors[source],
        alpha=alpha[step],
        lw=2.2 if step == last else 0.8,
        label=source if step == last else None,
      )


def _finish_curves(ax, ft_steps, ylabel: str) -> None:
  _log_steps(ax, ft_steps)
  ax.set_ylabel(ylabel)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)


def finetune_curves(curves: pd.DataFrame, out_dir, *, setting: str) -> list[pathlib.Path]:
  """Per target: accuracy vs fine-tune step (log axis), one line per (source, pre-train step),
  later checkpoints darker, the longest thick; scratch in grey (thesis figs. 3.5, 3.7)."""
  out_dir = pathlib.Path(out_dir)
  colors = source_colors(curves.loc[curves["source"] != "scratch", "source"])
  paths = []
  for target, tgrp in curves[curves["setting"] == setting].groupby("target"):
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    _checkpoint_lines(ax, tgrp[tgrp["source"] != "scratch"], colors)
    scratch = tgrp[tgrp["source"] == "scratch"]
    if not scratch.empty:
      m = scratch.groupby("ft_step")["test_acc"].mean()
      ax.plot(m.index + 1, m.to_numpy(), color="0.4", ls="--", lw=2, label="scratch")
    _finish_curves(ax, tgrp["ft_step"], "test accuracy")
    _titles(
      fig,
      f"Fine-tuning on {target} ({setting})",
      "one line per pre-training checkpoint, darker = longer pre-training, thick = longest; "
      "mean over seeds",
    )
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
    _checkpoint_lines(ax, zoo, colors, to_xy=functools.partial(_minus, base))
    _finish_curves(ax, tgrp["ft_step"], "Δ test accuracy to scratch")
    _titles(
      fig,
      f"{target} ({setting}): accuracy minus training from scratch",
      "darker = longer pre-training, thick = longest; grey band = scratch ± 2σ over seeds",
    )
    paths.append(_save(fig, out_dir, _slug("delta_to_scratch", target, setting)))
  return paths


def _rho_series(ax, sc, x_of, groups, breakdown, colors, cmap, ls="-"):
  """One series per group of the breakdown; x_of maps a row's key (layer or score) to x; ls
  "none" leaves categorical points unjoined."""
  for i, grp_name in enumerate(groups):
    g = sc[sc["group"] == grp_name].dropna(subset=["n"])
    g = g[g["key"].isin(list(x_of))]
    if g.empty:
      continue
    g = g.assign(x=g["key"].map(x_of)).sort_values("x")
    if breakdown == "all":
      # The cluster bootstrap interval (the report's default); NaN where too few clusters.
      lo, hi = g["cluster_ci_lo"], g["cluster_ci_hi"]
      err = np.nan_to_num(np.abs(np.vstack([g["spearman"] - lo, hi - g["spearman"]])))
      ax.errorbar(g["x"], g["spearman"], yerr=err, marker="o", ls=ls, capsize=3, label="all models")
    elif colors is not None:
      ax.plot(g["x"], g["spearman"], marker="o", ls=ls, color=colors[grp_name], label=grp_name)
    else:
      frac = (i + 1) / len(groups)
      ax.plot(
        g["x"],
        g["spearman"],
        marker=".",
        ls=ls,
        color=cmap(frac),
        alpha=0.3 + 0.7 * frac,
        label=grp_name,
      )


def _null(ax, n_values):
  n = int(np.nanmedian(n_values)) if len(n_values) else 0
  lo, hi = null_band(n)
  if np.isfinite(hi):
    ax.axhspan(lo, hi, color="0.8", alpha=0.6, label=f"null band n={n}")


_LEGEND_TITLES = {
  "per_source": "source",
  "per_checkpoint": "checkpoint index",
  "per_ft_step": "fine-tune step",
}


def rho_per_layer(
  corr: pd.DataFrame,
  out_dir,
  *,
  breakdown: str,
  target: str,
  setting: str,
  probe: str,
  layers,
  overrides=None,
) -> pathlib.Path | None:
  """Spearman ρ vs layer, one panel per score; the thesis' null band (grey) for the panel's
  typical n; cluster-bootstrap 95% intervals as error bars for the "all" breakdown. Layer-free
  scores share one last panel with the scores on the x axis."""
  c = corr[
    (corr["breakdown"] == breakdown)
    & (corr["target"] == target)
    & (corr["setting"] == setting)
    & (corr["probe"] == probe)
  ]
  if c.empty:
    return None
  free = _layer_free_scores(c)
  axis_layers = _layer_axis(layers)
  per_layer = c[~c["score"].isin(free) & c["layer"].isin(axis_layers)]
  layer_free = _layer_free_rows(c, free)
  # A constant baseline has no ρ anywhere: no panel.
  defined = per_layer.groupby("score")["spearman"].apply(lambda r: np.isfinite(r).any())
  scores = sorted(defined.index[defined])
  free_defined = sorted(
    s for s, r in layer_free.groupby("score")["spearman"] if np.isfinite(r).any()
  )
  n_panels = len(scores) + bool(free_defined)
  if not n_panels:
    return None
  fig, axes = _grid(n_panels)
  groups = list(dict.fromkeys(c.sort_values("group", key=_group_key)["group"]))
  cmap = plt.get_cmap("viridis")
  colors = source_colors(groups) if breakdown == "per_source" else None
  x_layers = {lay: i for i, lay in enumerate(axis_layers)}
  for ax, score in zip(axes, scores, strict=False):
    sc = per_layer[per_layer["score"] == score].assign(key=lambda d: d["layer"])
    _null(ax, sc["n"])
    _rho_series(ax, sc, x_layers, groups, breakdown, colors, cmap)
    _layer_ticks(ax, axis_layers, fontsize=7)
    ax.set_title(labels.axis_label(score, overrides), fontsize=9)
  if free_defined:
    ax = axes[len(scores)]
    sc = layer_free[layer_free["score"].isin(free_defined)].assign(key=lambda d: d["score"])
    _null(ax, sc["n"])
    x_free = {s: i for i, s in enumerate(free_defined)}
    _rho_series(ax, sc, x_free, groups, breakdown, colors, cmap, ls="none")
    names = [f"{labels.display_name(s)} {labels.arrow(s, overrides)}" for s in free_defined]
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", rotation_mode="anchor")
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_title("layer-free scores", fontsize=9)
  for k, ax in enumerate(axes[:n_panels]):
    ax.set_ylim(-1.05, 1.05)
    ax.grid(alpha=0.3)
    if k % 4 == 0:
      ax.set_ylabel("Spearman ρ (oriented)", fontsize=8)
  _legend(fig, axes, n_panels, _LEGEND_TITLES.get(breakdown))
  _titles(
    fig,
    f"Spearman ρ per layer — {breakdown.replace('_', ' ')}, target {target}, {setting}, "
    f"probe {probe}",
    SIGN_NOTE.replace("r, ρ", "ρ").format(truth="log-AUC")
    + "; grey = null band ±tanh(1.96/√(n−3))",
  )
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
  """Score (raw value) vs ground truth, one panel per score, coloured by source; the focus
  layer's scores first, then the layer-free ones. Pearson r and Spearman ρ in the panel titles
  are both of the oriented score, as in the report's tables (NC paper figs. 2-3)."""
  j = joint[(joint["target"] == target) & (joint["setting"] == setting) & (joint["probe"] == probe)]
  free = _layer_free_scores(j)
  at_layer = j[(j["layer"] == layer) & ~j["score"].isin(free)]
  j = pd.concat([at_layer, _layer_free_rows(j, free)], ignore_index=True)
  if at_layer.empty:
    return None
  scores = sorted(set(at_layer["score"])) + sorted(free & set(j["score"]))
  colors = source_colors(joint["source"])
  fig, axes = _grid(len(scores))
  for k, (ax, score) in enumerate(zip(axes, scores, strict=False)):
    g = j[j["score"] == score]
    for source, sg in g.groupby("source"):
      ax.scatter(sg["value"], sg[truth], s=14, color=colors[source], label=source, alpha=0.8)
    x, y = g["oriented"].to_numpy(float), g[truth].to_numpy(float)
    title = labels.display_name(score) + (" (no layer)" if score in free else "")
    if len(g) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
      r = stats.pearsonr(x, y).statistic
      rho = stats.spearmanr(x, y).statistic
      title += f"\nr = {r:+.2f}, ρ = {rho:+.2f}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(labels.axis_label(score, overrides), fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useOffset=True)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if k % 4 == 0:
      ax.set_ylabel(labels.truth_name(truth), fontsize=8)
  _legend(fig, axes, len(scores), "source")
  _titles(
    fig,
    f"Score vs {labels.truth_name(truth)} — target {target}, {setting}, layer {layer}, "
    f"probe {probe}",
    SIGN_NOTE.format(truth=labels.truth_name(truth)) + "; one point per model",
  )
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
  fig.colorbar(im, ax=ax, label=labels.truth_name(value))
  _titles(fig, f"Gradual transfer: {labels.truth_name(value)}")
  return _save(fig, pathlib.Path(out_dir), _slug("transfer_matrix", value))
