"""Tables and figures of the gradual-transfer study (`configs/gradual_transfer.py`).

  run(workdir) -> [gradual_matrix.csv, gradual_asymmetry.csv, gradual_drops.csv,
                   gradual_slopes.csv, figures/gradual_*.png]
  report(workdir, tables)   # the same, as the study config's evaluate stage runs it

The matrix is M[source → target, l] = seed mean of the fine-tune log-AUC (the thesis' ground
truth) and of the final test accuracy (Fayek's measure) with l frozen leading layers, from each
source's last checkpoint (`jtransfer.analysis.transfer_matrix`); only complete curves count. The
asymmetry of a pair {A, B} at l is drop(A→B) − drop(B→A), each drop taken against the target's
self-transfer at the same l. Baselines (scratch, random_init) are not sources of the matrix;
scratch is drawn as the reference line of "a model trained on the target alone".
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from jtransfer.analysis import report as report_lib  # noqa: E402
from jtransfer.analysis import transfer_matrix as tm  # noqa: E402
from jtransfer.analysis import truth  # noqa: E402
from jtransfer.store import results  # noqa: E402

VALUES = ("log_auc", "final_acc")
LABELS = {"log_auc": "fine-tune log-AUC", "final_acc": "final test accuracy"}
BASELINES = ("scratch", "random_init")


def tables(finetune: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
  """(matrix, asymmetry, scratch) from the finetune rows.

  matrix: source, arch, target, frozen, <value>, <value>_std, n (seeds) for every VALUE;
  asymmetry: value, a, b, frozen, a_to_b, b_to_a, drop_a_to_b, drop_b_to_a, asymmetry;
  scratch: target, <value> (mean over fine-tune seeds) of the scratch baseline.
  """
  gt = truth.ground_truth(finetune)
  if gt.empty:
    raise ValueError("the finetune table is empty: nothing to build a transfer matrix from")
  gt = gt[gt["complete"]]
  models = gt[~gt["source"].isin(BASELINES)]
  keys = ["source", "arch", "target", "frozen"]
  parts, asym = [], []
  for value in VALUES:
    m = tm.transfer_matrix(models, value=value)
    asym.append(tm.asymmetry(m, value=value).assign(value=value))
    parts.append(m.rename(columns={"std": f"{value}_std"}).set_index(keys))
  matrix = parts[0].drop(columns="n").join(parts[1]).reset_index()
  asymmetry = pd.concat(asym, ignore_index=True)
  if not asymmetry.empty:
    asymmetry = asymmetry[["value", *[c for c in asymmetry.columns if c != "value"]]]
  scratch = gt[gt["source"] == "scratch"].groupby("target")[list(VALUES)].mean().reset_index()
  return matrix, asymmetry, scratch


def per_seed(gt: pd.DataFrame, value: str) -> dict[tuple, np.ndarray]:
  """{(source, target, frozen): that value per pre-training seed} at each source's last step
  (curves already averaged over fine-tune seeds, so a seed is one independent run)."""
  df = gt[np.isfinite(gt["frozen"].to_numpy(dtype=float)) & ~gt["source"].isin(BASELINES)]
  explicit0 = set(df.loc[df["setting"] == "frozen=0", "target"])
  df = df[~((df["setting"] == "full") & df["target"].isin(explicit0))]
  df = df[df["step"] == df.groupby(["source", "arch"])["step"].transform("max")]
  return {
    (s, t, int(f)): g.sort_values("seed")[value].to_numpy(float)
    for (s, t, f), g in df.groupby(["source", "target", "frozen"])
  }


def drop_intervals(
  gt: pd.DataFrame, *, value: str = "final_acc", n_boot: int = 2_000, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
  """(drops, slopes) with percentile 95 % intervals from resampling pre-training seeds.

  drops: per transfer A→B (A ≠ B) and l, drop = mean_A[A→B, l] − mean_B[B→B, l], and for each
  pair {A, B} the asymmetry drop(A→B) − drop(B→A); slopes: the least-squares slope of the drop
  against l per transfer, and the asymmetry of the slopes. Each resample draws A's seeds and B's
  seeds with replacement, independently (their runs are independent; a seed's A→B and A→A
  curves start from the same network, so they are drawn together).
  """
  cells = per_seed(gt, value)
  tasks = sorted({s for s, _, _ in cells} | {t for _, t, _ in cells})
  n_seeds = {s: max(len(v) for (src, _, _), v in cells.items() if src == s) for s in tasks}
  rng = np.random.default_rng(seed)
  draws = {s: rng.integers(0, n, size=(n_boot, n)) for s, n in n_seeds.items()}

  def mean(src, tgt, f, boot):
    v = cells.get((src, tgt, f))
    if v is None or len(v) != n_seeds[src]:
      return None
    return v.mean() if boot is None else v[draws[src]].mean(axis=1)

  def drop(a, b, f, boot):
    ab, bb = mean(a, b, f, boot), mean(b, b, f, boot)
    return None if ab is None or bb is None else ab - bb

  def slope(ls, ys):
    x = np.asarray(ls, float) - np.mean(ls)
    return (x[:, None] * (np.stack(ys) - np.mean(ys, axis=0))).sum(0) / (x**2).sum()

  def interval(point, samples):
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return dict(estimate=float(point), lo=float(lo), hi=float(hi))

  drops, slopes = [], []
  frozen = sorted({f for _, _, f in cells})
  transfers = sorted({(s, t) for s, t, _ in cells if s != t})
  for a, b in transfers:
    ls = [f for f in frozen if drop(a, b, f, None) is not None]
    for f in ls:
      drops.append(dict(value=value, kind="drop", a=a, b=b, frozen=f,
                        **interval(drop(a, b, f, None), drop(a, b, f, True))))  # fmt: skip
    if len(ls) >= 2:
      point = slope(ls, [np.atleast_1d(drop(a, b, f, None)) for f in ls])[0]
      boot = slope(ls, [drop(a, b, f, True) for f in ls])
      slopes.append(dict(value=value, kind="slope", a=a, b=b, **interval(point, boot)))
    if a < b and (b, a) in transfers:  # the pair's asymmetry, per l and of the slopes
      both = [f for f in ls if drop(b, a, f, None) is not None]
      for f in both:
        point = drop(a, b, f, None) - drop(b, a, f, None)
        boot = drop(a, b, f, True) - drop(b, a, f, True)
        drops.append(dict(value=value, kind="asymmetry", a=a, b=b, frozen=f,
                          **interval(point, boot)))  # fmt: skip
      if len(both) >= 2:
        point = (
          slope(both, [np.atleast_1d(drop(a, b, f, None)) for f in both])[0]
          - slope(both, [np.atleast_1d(drop(b, a, f, None)) for f in both])[0]
        )
        boot = slope(both, [drop(a, b, f, True) for f in both]) - slope(
          both, [drop(b, a, f, True) for f in both]
        )
        slopes.append(dict(value=value, kind="slope_asymmetry", a=a, b=b, **interval(point, boot)))
  return pd.DataFrame(drops), pd.DataFrame(slopes)


def _save(fig, out_dir: pathlib.Path, name: str) -> pathlib.Path:
  out_dir.mkdir(parents=True, exist_ok=True)
  png = out_dir / f"{name}.png"
  fig.savefig(png, dpi=110)
  fig.savefig(out_dir / f"{name}.pdf")
  plt.close(fig)
  return png


def _line(ax, matrix, source, target, value, **style):
  d = matrix[(matrix["source"] == source) & (matrix["target"] == target)].sort_values("frozen")
  if not d.empty:
    std = d[f"{value}_std"].fillna(0.0)
    ax.errorbar(d["frozen"], d[value], yerr=std, marker="o", capsize=3, **style)


def transfer_figure(matrix, asymmetry, scratch, value: str, out_dir) -> pathlib.Path | None:
  """Fayek's Fig. 1 per pair: value vs frozen layers on B (A→B, B→B), on A, and the asymmetry."""
  asym = asymmetry[asymmetry["value"] == value] if not asymmetry.empty else asymmetry
  if asym.empty:
    return None
  pairs = list(dict.fromkeys(zip(asym["a"], asym["b"], strict=True)))
  fig, axes = plt.subplots(
    len(pairs), 3, figsize=(12, 3.1 * len(pairs)), squeeze=False, constrained_layout=True
  )
  ref = scratch.set_index("target")[value] if not scratch.empty else pd.Series(dtype=float)
  for row, (a, b) in zip(axes, pairs, strict=True):
    for ax, (src, tgt) in zip(row[:2], ((a, b), (b, a)), strict=True):
      _line(ax, matrix, src, tgt, value, label=f"{src} → {tgt}")
      _line(ax, matrix, tgt, tgt, value, label=f"{tgt} → {tgt} (self)", ls="--")
      if tgt in ref.index:
        ax.axhline(ref[tgt], color="grey", ls=":", label="scratch on target")
      ax.set_title(f"target {tgt}", fontsize=9)
      ax.set_xlabel("frozen leading layers l")
      ax.set_ylabel(LABELS[value])
      ax.legend(fontsize=7)
    d = asym[(asym["a"] == a) & (asym["b"] == b)].sort_values("frozen")
    ax = row[2]
    if "drop_a_to_b" in d:
      ax.plot(d["frozen"], d["drop_a_to_b"], marker="o", label=f"drop {a} → {b}")
      ax.plot(d["frozen"], d["drop_b_to_a"], marker="s", label=f"drop {b} → {a}")
    ax.plot(d["frozen"], d["asymmetry"], marker="^", color="k", label="asymmetry")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_title(f"{a} ↔ {b}", fontsize=9)
    for axis in row:
      axis.set_xticks(sorted(set(d["frozen"].astype(int))))
    ax.set_xlabel("frozen leading layers l")
    ax.set_ylabel(f"Δ {LABELS[value]} vs self-transfer")
    ax.legend(fontsize=7)
  fig.suptitle(f"Gradual transfer: {LABELS[value]} (seed mean ± std)")
  return _save(fig, pathlib.Path(out_dir), f"gradual_transfer_{value}")


def matrix_figure(matrix, value: str, out_dir) -> pathlib.Path | None:
  """Heatmap of M[source → target, l]: one row per ordered pair, one column per l."""
  if matrix.empty:
    return None
  table = matrix.pivot_table(index=["target", "source"], columns="frozen", values=value)
  labels = [f"{s} → {t}" for t, s in table.index]
  fig, ax = plt.subplots(
    figsize=(1.2 + 0.9 * table.shape[1], 0.9 + 0.42 * len(table)), constrained_layout=True
  )
  im = ax.imshow(table.to_numpy(dtype=float), aspect="auto", cmap="viridis")
  ax.set_xticks(range(table.shape[1]), [str(int(f)) for f in table.columns])
  ax.set_yticks(range(len(labels)), labels, fontsize=8)
  ax.set_xlabel("frozen leading layers l")
  for (i, j), v in np.ndenumerate(table.to_numpy(dtype=float)):
    if np.isfinite(v):  # dark text on the bright end of viridis
      color = "k" if im.norm(v) > 0.6 else "w"
      ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7, color=color)
  fig.colorbar(im, ax=ax, label=LABELS[value])
  ax.set_title(f"Layer-wise transfer matrix ({LABELS[value]})", fontsize=9)
  return _save(fig, pathlib.Path(out_dir), f"gradual_matrix_{value}")


def run(workdir) -> list[pathlib.Path]:
  """Writes the tables and figures of a finished gradual-transfer run; returns their paths."""
  return write(pathlib.Path(workdir), results.load(workdir, "finetune"))


def report(workdir, tables) -> report_lib.Part:
  """`run` on the store's fine-tune rows already read."""
  return report_lib.Part("gradual", files=tuple(write(workdir, tables.store["finetune"])))


def write(workdir, finetune: pd.DataFrame) -> list[pathlib.Path]:
  """`run` of fine-tune rows already read."""
  workdir = pathlib.Path(workdir)
  matrix, asymmetry, scratch = tables(finetune)
  paths = [workdir / "gradual_matrix.csv", workdir / "gradual_asymmetry.csv"]
  matrix.to_csv(paths[0], index=False)
  asymmetry.to_csv(paths[1], index=False)
  gt = truth.ground_truth(finetune)
  gt = gt[gt["complete"]]
  parts = [drop_intervals(gt, value=v) for v in VALUES]
  for name, k in (("gradual_drops.csv", 0), ("gradual_slopes.csv", 1)):
    paths.append(workdir / name)
    pd.concat([p[k] for p in parts], ignore_index=True).to_csv(paths[-1], index=False)
  for value in VALUES:
    for fig in (
      transfer_figure(matrix, asymmetry, scratch, value, workdir / "figures"),
      matrix_figure(matrix, value, workdir / "figures"),
    ):
      if fig is not None:
        paths.append(fig)
  return paths
