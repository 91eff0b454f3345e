r"""Copies a finished decide_cnn workdir's small outputs into docs/results/decide_cnn/ and writes
its findings table (findings.csv, findings.md) from the copied CSVs.

  .venv/bin/python scripts/publish_decide_cnn.py /work/jtransfer-runs/decide_cnn \
      [--probe 20=/work/jtransfer-runs/probe20 --probe 100=/work/jtransfer-runs/probe100]

The probe workdirs hold the same zoo scored at pool2 with another probe size (launch/score.py
--config.score.probe_per_class=K --config.score.layers=pool2 on a copy of the zoo); their
scores are written as scores_pool2_probe<K>.csv and compared in probe_size.csv.

tests/results_decide_cnn_test.py recomputes the findings and the pooled ρ from the copies.
"""

import pathlib
import shutil
import sys

import numpy as np
import pandas as pd

from jtransfer.studies import findings as findings_table

OUT = pathlib.Path(__file__).resolve().parents[1] / "docs" / "results" / "decide_cnn"
LAYER = "pool2"  # the thesis' layer
CSVS = (
  "ground_truth", "versus_checkpoint", "within_position", "leave_one_source_out", "source_gaps",
  "selection", "power_rho",
)  # fmt: skip
FIGURES = (
  "scatter_mnist_full_pool2_train.png", "scatter_fashion_mnist_full_pool2_train.png",
  "rho_per_layer_all_mnist_full_train.png", "rho_per_layer_all_fashion_mnist_full_train.png",
  "finetune_curves_mnist_full.png", "finetune_curves_fashion_mnist_full.png",
)  # fmt: skip
NOISE = ("mnist_noise", "mnist_noise_struct", "mnist_gauss_noise", "mnist_label_noise_50")


def _write_scores(workdir: pathlib.Path, layers: tuple[str, ...], path: pathlib.Path) -> None:
  """The workdir's score rows at `layers`, the columns that define a value, as a CSV."""
  from jtransfer.store import results  # noqa: PLC0415

  scores = results.load(workdir, "scores")
  cols = ["source", "arch", "seed", "step", "target", "probe", "layer", "score", "value"]
  scores.loc[scores["layer"].isin(layers), cols].to_csv(path, index=False)


def export(workdir: pathlib.Path) -> None:
  (OUT / "figures").mkdir(parents=True, exist_ok=True)
  for name in ("report.md", "report.html"):
    shutil.copy(workdir / name, OUT / name)
  for name in CSVS:
    shutil.copy(workdir / f"analysis_{name}.csv", OUT / f"analysis_{name}.csv")
  corr = pd.read_csv(workdir / "analysis_correlations.csv")
  corr[corr["breakdown"] == "all"].to_csv(OUT / "analysis_correlations_all.csv", index=False)
  # the focus layer and the layer-free baselines
  _write_scores(workdir, (LAYER, "-"), OUT / "scores_pool2.csv")
  for name in FIGURES:
    shutil.copy(workdir / "figures" / name, OUT / "figures" / name)


def export_probe(k: int, workdir: pathlib.Path) -> None:
  _write_scores(workdir, (LAYER,), OUT / f"scores_pool2_probe{k}.csv")


def _tied_at_max(values: pd.Series) -> float:
  """Share of the models within float32 round-off (1e-6 relative) of the largest value."""
  top = values.max()
  return float((values >= top - 1e-6 * max(abs(top), 1.0)).mean())


def probe_size(d: pathlib.Path = OUT) -> pd.DataFrame:
  """Kendall τ between the checkpoints' rankings by a score at probe size K and at the study's
  own probe size (pool2, every scored checkpoint, per target)."""
  from scipy import stats  # noqa: PLC0415

  from jtransfer.cli import overrides as config_cli  # noqa: PLC0415

  decide_cnn = config_cli.load_module(OUT.parents[2] / "configs" / "decide_cnn.py")

  main = decide_cnn.get_config().score.probe_per_class

  keys = ["source", "arch", "seed", "step", "target", "score"]
  base = pd.read_csv(d / "scores_pool2.csv")
  base = base[base["layer"] == LAYER]
  rows = []
  for path in sorted(d.glob("scores_pool2_probe*.csv")):
    k = int(path.stem.removeprefix("scores_pool2_probe"))
    j = base.merge(pd.read_csv(path), on=keys, suffixes=("_main", "_k"))
    for (target, score), g in j.groupby(["target", "score"]):
      ok = np.isfinite(g["value_main"]) & np.isfinite(g["value_k"])
      if ok.sum() < 3 or g.loc[ok, "value_main"].nunique() < 2:
        continue
      a, b = g.loc[ok, "value_main"], g.loc[ok, "value_k"]
      tau = stats.kendalltau(a, b).statistic
      # A score whose models tie at its maximum (SFDA's saturated posterior) has few ordered
      # pairs: a low τ then says "mostly ties", not "the order moved".
      row = {"target": target, "score": score, "probe_per_class": k, "main_per_class": main}
      row |= {"n": int(ok.sum()), "kendall_tau": tau}
      rows.append(row | {"tied_at_max_main": _tied_at_max(a), "tied_at_max_k": _tied_at_max(b)})
  return pd.DataFrame(rows)


def findings(d: pathlib.Path = OUT) -> pd.DataFrame:
  """claim | paper | jtransfer (interval) | decided? | agrees? | why not, from the CSVs in d."""
  corr = pd.read_csv(d / "analysis_correlations_all.csv")
  vs = pd.read_csv(d / "analysis_versus_checkpoint.csv")
  within = pd.read_csv(d / "analysis_within_position.csv")
  gaps = pd.read_csv(d / "analysis_source_gaps.csv")
  rows = []
  for target in ("mnist", "fashion_mnist"):
    r = corr[(corr["target"] == target) & (corr["layer"] == LAYER) & (corr["score"] == "rsa")]
    r = r.iloc[0]
    decided, agrees = findings_table.range_verdict(r["cluster_ci_lo"], r["cluster_ci_hi"], 0.8, 1.0)
    rows.append({
      "claim": f"RSA at pool2 predicts transfer, ρ ≈ 0.9 ({target})",
      "paper": "thesis 3.3: ρ ≈ 0.9 (MNIST)",
      "jtransfer": f"ρ = {r['spearman']:.2f} [{r['cluster_ci_lo']:.2f}, {r['cluster_ci_hi']:.2f}],"
      f" n = {int(r['n'])}, {int(r['n_clusters'])} clusters",
      "decided": decided, "agrees": agrees,
      "why_not": "" if decided == "yes" else "the interval holds 0.9 and values far from it",
    })  # fmt: skip
    v = vs[(vs["target"] == target) & (vs["layer"] == LAYER)]
    beat = v[v["diff_lo"] > 0].sort_values("diff", ascending=False)
    best = v.sort_values("diff", ascending=False).iloc[0]
    rows.append({
      "claim": f"a score ranks models better than pre-training length ({target})",
      "paper": "thesis: scores track transferability over checkpoints",
      "jtransfer": (
        "; ".join(f"{b.score} {b.diff:+.2f} [{b.diff_lo:+.2f}, {b.diff_hi:+.2f}]"
                  for b in beat.itertuples()) or
        f"none; best {best.score} {best['diff']:+.2f} [{best.diff_lo:+.2f}, {best.diff_hi:+.2f}]"
      ) + f" (differences of ρ; ρ(checkpoint_index) = {best.rho_baseline:.2f})",
      "decided": "yes" if len(beat) or (v["diff_hi"] < 0).all() else "no",
      "agrees": "yes" if len(beat) else ("no" if (v["diff_hi"] < 0).all() else "–"),
      "why_not": "" if len(beat) or (v["diff_hi"] < 0).all()
      else "differences' intervals hold 0 (pooled over nested checkpoints)",
    })  # fmt: skip
    w = within[(within["target"] == target) & (within["layer"] == LAYER)]
    sig = w[w["p_holm"] < 0.05].sort_values("rho_within", ascending=False)
    rows.append({
      "claim": f"scores rank models of equal pre-training length ({target})",
      "paper": "(not tested in the thesis: its pooled ρ mixes lengths)",
      "jtransfer": f"{len(sig)} of {len(w)} scores, Holm p < 0.05; top: "
      + ", ".join(f"{s.score} ρ = {s.rho_within:+.2f} (p = {s.p_holm:.3f})"
                  for s in sig.head(3).itertuples()),
      "decided": "yes" if len(sig) else "no", "agrees": "yes" if len(sig) else "–",
      "why_not": "" if len(sig) else "no score passes the permutation test after Holm",
    })  # fmt: skip
    g = gaps[gaps["target"] == target].sort_values("log_auc").reset_index(drop=True)
    ranks = [int(i) + 1 for i in g.index[g["source"].isin(NOISE)]]
    rows.append({
      "claim": f"noise sources transfer worst ({target})",
      "paper": "thesis 3.3: the noise sources transfer worst",
      "jtransfer": f"worst: {g['source'].iloc[0]} (log-AUC {g['log_auc'].iloc[0]:.3f}); noise"
      f" sources at ranks {ranks} of {len(g)} from the worst",
      "decided": "no", "agrees": "–",
      "why_not": "one pre-training seed per source: no interval on a source's log-AUC",
    })  # fmt: skip
  return pd.DataFrame(rows)


def write_findings(d: pathlib.Path = OUT) -> None:
  findings_table.write(findings(d), d, "decide_cnn: findings (thesis)")


if __name__ == "__main__":
  export(pathlib.Path(sys.argv[1]))
  args = sys.argv[2:]
  for flag, value in zip(args[::2], args[1::2], strict=True):
    assert flag == "--probe", flag
    k, path = value.split("=", 1)
    export_probe(int(k), pathlib.Path(path))
  write_findings()
  if list(OUT.glob("scores_pool2_probe*.csv")):
    probe_size().to_csv(OUT / "probe_size.csv", index=False)
