r"""Copies a finished thesis-replication workdir's small outputs into docs/results/thesis_cnn/
and writes its findings table against the thesis (findings.csv, findings.md).

  .venv/bin/python scripts/publish_thesis.py /work/jtransfer-runs/thesis

The pooled claims are read from the report's correlations (seeds averaged, clusters = sources
plus the shared initialisation); the claims about sources are decided from the 10 pre-training
seeds: every source's seeds are resampled independently (B = 2,000) and the interval is that of
the statistic the claim is about (e.g. the gap between the best noise source and the worst other
source). tests/results_thesis_cnn_test.py recomputes the findings from the copies.
"""

import pathlib
import shutil
import sys

import numpy as np
import pandas as pd

from jtransfer.studies import findings as findings_table

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "thesis_cnn"
LAYER = "pool2"
CSVS = ("ground_truth", "versus_checkpoint", "within_position", "leave_one_source_out",
        "source_gaps", "selection", "power_rho")  # fmt: skip
FIGURES = ("scatter_mnist_full_pool2_train.png", "scatter_fashion_mnist_full_pool2_train.png",
           "rho_per_layer_all_mnist_full_train.png",
           "rho_per_layer_all_fashion_mnist_full_train.png",
           "finetune_curves_mnist_full.png", "finetune_curves_fashion_mnist_full.png")  # fmt: skip
NOISE = ("mnist_noise", "mnist_noise_struct")
THESIS_SCORES = {"rsa": "RSA", "two_nn": "TWO-NN ID", "sum_of_squares": "SS"}
N_BOOT = 2_000


def export(workdir: pathlib.Path) -> None:
  sys.path.insert(0, str(ROOT))
  from jtransfer.store import results  # noqa: PLC0415

  (OUT / "figures").mkdir(parents=True, exist_ok=True)
  for name in ("report.md", "report.html"):
    shutil.copy(workdir / name, OUT / name)
  for name in CSVS:
    shutil.copy(workdir / f"analysis_{name}.csv", OUT / f"analysis_{name}.csv")
  corr = pd.read_csv(workdir / "analysis_correlations.csv")
  corr[corr["breakdown"] == "all"].to_csv(OUT / "analysis_correlations_all.csv", index=False)
  for name in FIGURES:
    if (workdir / "figures" / name).exists():
      shutil.copy(workdir / "figures" / name, OUT / "figures" / name)
  scores = results.load(workdir, "scores")
  cols = ["source", "arch", "seed", "step", "target", "probe", "layer", "score", "value"]
  keep = scores["layer"].isin((LAYER, "-")) & (scores["probe"] == "train")
  keep &= scores["score"].isin((*THESIS_SCORES, "logme", "leep", "checkpoint_index"))
  scores.loc[keep, cols].to_csv(OUT / "scores_pool2.csv", index=False)


def last_step(table: pd.DataFrame) -> pd.DataFrame:
  """Rows at each source's last pre-training step (the finished models)."""
  return table[table["step"] == table.groupby("source")["step"].transform("max")]


def seed_values(d: pathlib.Path, target: str, *, score: str | None = None) -> dict[str, np.ndarray]:
  """{source: per-seed value at its last step}: the fine-tune log-AUC (score None, full
  fine-tuning) or a score at pool2."""
  if score is None:
    t = pd.read_csv(d / "analysis_ground_truth.csv")
    t = t[(t["target"] == target) & (t["setting"] == "full") & ~t["source"].isin(
      ("scratch", "random_init"))]  # fmt: skip
    col = "log_auc"
  else:
    t = pd.read_csv(d / "scores_pool2.csv")
    t = t[(t["target"] == target) & (t["layer"] == LAYER) & (t["score"] == score)]
    col = "value"
  t = last_step(t)
  return {s: g.sort_values("seed")[col].to_numpy(float) for s, g in t.groupby("source")}


def bootstrap(values: dict[str, np.ndarray], statistic, *, seed: int = 0) -> np.ndarray:
  """statistic({source: mean}) over resamples of each source's seeds (independently)."""
  rng = np.random.default_rng(seed)
  out = np.empty(N_BOOT)
  for b in range(N_BOOT):
    out[b] = statistic({s: v[rng.integers(0, len(v), len(v))].mean() for s, v in values.items()})
  return out


def _decide(point, samples, *, claim_positive: bool = True):
  """(text, decided, agrees) for a claim that the statistic is > 0."""
  lo, hi = np.percentile(samples, [2.5, 97.5])
  text = f"{point:+.4f} [{lo:+.4f}, {hi:+.4f}]"
  if lo > 0:
    return text, "yes", "yes" if claim_positive else "no"
  if hi < 0:
    return text, "yes", "no" if claim_positive else "yes"
  return text, "no", "–"


def findings(d: pathlib.Path = OUT) -> pd.DataFrame:
  """claim | paper | jtransfer (interval) | decided? | agrees? | why not, from the CSVs in d."""
  corr = pd.read_csv(d / "analysis_correlations_all.csv")
  corr = corr[(corr["layer"] == LAYER) & (corr["setting"] == "full") & (corr["probe"] == "train")]
  rows = []
  for target in ("mnist", "fashion_mnist"):
    c = corr[corr["target"] == target].set_index("score")
    r = c.loc["rsa"]
    decided, agrees = findings_table.range_verdict(r["cluster_ci_lo"], r["cluster_ci_hi"], 0.8, 1.0)
    rows.append({
      "claim": f"RSA at pool2 predicts transfer, pooled ρ ≈ 0.9 ({target})",
      "paper": "thesis 3.3 (Fig. 3.21): almost 0.9 (MNIST), 72 models",
      "jtransfer": f"ρ = {r['spearman']:.2f} [{r['cluster_ci_lo']:.2f}, {r['cluster_ci_hi']:.2f}],"
      f" n = {int(r['n'])}, {int(r['n_clusters'])} clusters",
      "decided": decided, "agrees": agrees,
      "why_not": "" if decided == "yes" else "the interval holds 0.9 and values below 0.8",
    })  # fmt: skip
    parts, ok, bad = [], 0, 0
    for score, label in THESIS_SCORES.items():
      s = c.loc[score]
      lo, hi = s["cluster_ci_lo"], s["cluster_ci_hi"]  # oriented: > 0 is the expected sign
      ok += lo > 0
      bad += hi < 0
      parts.append(f"{label} {s['spearman']:+.2f} [{lo:+.2f}, {hi:+.2f}]")
    n = len(THESIS_SCORES)
    rows.append({
      "claim": f"ID, SS and RSA at pool2 all correlate with transfer, pooled ({target})",
      "paper": "thesis 3.3: statistically significant for all three metrics",
      "jtransfer": "; ".join(parts) + " (ρ of the sign-corrected score)",
      "decided": "yes" if ok + bad == n else "no",
      "agrees": "yes" if ok == n else "no" if bad else f"{ok} of {n}",
      "why_not": "" if ok + bad == n else "an interval holds 0",
    })  # fmt: skip
    la = seed_values(d, target)
    others = [s for s in la if s not in NOISE]

    def noise_gap(m, others=others):
      return min(m[s] for s in others) - max(m[s] for s in NOISE)

    rest = [s for s in la if s != "mnist_noise"]

    def pure_gap(m, rest=rest):
      return min(m[s] for s in rest) - m["mnist_noise"]

    text, decided, agrees = _decide(
      pure_gap({s: v.mean() for s, v in la.items()}), bootstrap(la, pure_gap)
    )
    rows.append({
      "claim": f"the pure-noise source transfers worst ({target})",
      "paper": "thesis 3.2: pure noise stays at the very bottom (the bottom benchmark)",
      "jtransfer": f"log-AUC, worst other source − mnist_noise at the last checkpoint: {text}",
      "decided": decided, "agrees": agrees,
      "why_not": "" if decided == "yes" else "the gap's interval holds 0",
    })  # fmt: skip
    text, decided, agrees = _decide(
      noise_gap({s: v.mean() for s, v in la.items()}), bootstrap(la, noise_gap)
    )
    rows.append({
      "claim": f"the noise sources transfer worst ({target})",
      "paper": "thesis 3.3: noise and structured noise worst by every measure",
      "jtransfer": f"log-AUC, worst other source − best noise source at the last checkpoint: "
      f"{text} ({len(next(iter(la.values())))} seeds per source)",
      "decided": decided, "agrees": agrees,
      "why_not": "" if decided == "yes" else "the gap's interval holds 0",
    })  # fmt: skip
  ident = seed_values(d, "mnist", score="two_nn")
  means = {s: v.mean() for s, v in ident.items()}
  rest = [s for s in ident if s != "mnist_noise"]

  def noise_highest(m):
    return m["mnist_noise"] - max(m[s] for s in rest)

  text, decided, agrees = _decide(noise_highest(means), bootstrap(ident, noise_highest))
  rows.append({
    "claim": "pool2 ID on MNIST is highest for the noise source",
    "paper": "thesis 3.1: MNIST noise 16.1, the highest",
    "jtransfer": f"ID(mnist_noise) − the next highest: {text}; mnist_noise "
    f"{means['mnist_noise']:.1f}",
    "decided": decided, "agrees": agrees,
    "why_not": "" if decided == "yes" else "the gap's interval holds 0",
  })  # fmt: skip
  split = "mnist_split_0_4"
  rest = [s for s in ident if s != split]

  def split_lowest(m):
    return min(m[s] for s in rest) - m[split]

  text, decided, agrees = _decide(split_lowest(means), bootstrap(ident, split_lowest))
  rows.append({
    "claim": "pool2 ID on MNIST is lowest for MNIST 0-4 (split 1)",
    "paper": "thesis 3.1: MNIST split 1 10.9, the lowest (MNIST family 10.9-12)",
    "jtransfer": f"the next lowest − ID(mnist_split_0_4): {text}; mnist_split_0_4 "
    f"{means[split]:.1f}",
    "decided": decided, "agrees": agrees,
    "why_not": "" if decided == "yes" else "the gap's interval holds 0",
  })  # fmt: skip
  fid = seed_values(d, "fashion_mnist", score="two_nn")
  fmeans = {s: v.mean() for s, v in fid.items()}
  rest = [s for s in fid if s != "fashion_mnist"]

  def self_not_lowest(m):
    return m["fashion_mnist"] - min(m[s] for s in rest)

  text, decided, agrees = _decide(self_not_lowest(fmeans), bootstrap(fid, self_not_lowest))
  rows.append({
    "claim": "on Fashion-MNIST the Fashion-MNIST source does NOT have the lowest pool2 ID",
    "paper": "thesis 3.1: the MNIST sources have the lowest ID there, not Fashion itself",
    "jtransfer": f"ID(fashion_mnist) − the lowest other source: {text}",
    "decided": decided, "agrees": agrees,
    "why_not": "" if decided == "yes" else "the gap's interval holds 0",
  })  # fmt: skip
  return pd.DataFrame(rows)


def write_findings(d: pathlib.Path = OUT) -> None:
  findings_table.write(findings(d), d, "thesis_cnn: findings (thesis replication)")


if __name__ == "__main__":
  export(pathlib.Path(sys.argv[1]))
  write_findings()
