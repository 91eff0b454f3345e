r"""Copies a finished audio scale/ontology workdir's small outputs into docs/results/<name>/ and
writes its findings table against the audio scale/ontology abstract (findings.csv, findings.md)
from the copied CSVs.

  .venv/bin/python scripts/publish_audio_scale.py /work/jtransfer-runs/audio_scale_decide \
      [--name audio_scale]

per_seed.csv holds the cells every finding comes from: per source and pre-training seed, the
finished model's (last checkpoint's) fine-tune final accuracy, best accuracy and log-AUC
(averaged over fine-tune seeds) and its scores at the study's layer. Intervals resample
pre-training seeds with replacement, independently per source (each seed is its own network).
tests/results_audio_scale_test.py recomputes the findings from the copies.
"""

import argparse
import pathlib
import shutil

import numpy as np
import pandas as pd

from jtransfer.studies import findings as findings_table

ROOT = pathlib.Path(__file__).resolve().parents[1]
VALUES = ("final_acc", "log_auc")  # the abstract's measure is task performance: final first
FIGURES = ("scale_classes.png", "scale_samples.png")
N_BOOT, ALPHA = 2_000, 0.05
CLASS_LADDER = ("fsdd_digit_c2", "fsdd_digit_c5", "fsdd_digit_c10")  # 180 clips per class
SAMPLE_LADDER = ("fsdd_digit_spk0123_n10", "fsdd_digit_spk0123_n45", "fsdd_digit_c10")
DISSIMILAR = "fsdd_speaker_spk0123"  # the same clips labelled by speaker: another task
SMALLEST_SIMILAR = "fsdd_digit_spk0123_n10"  # the target's task on 100 clips


def export(workdir: pathlib.Path, out: pathlib.Path) -> None:
  from jtransfer.analysis import truth  # noqa: PLC0415
  from jtransfer.store import results  # noqa: PLC0415
  from jtransfer.studies import audio_scale  # noqa: PLC0415

  (out / "figures").mkdir(parents=True, exist_ok=True)
  shutil.copy(workdir / "scale.csv", out / "scale.csv")
  for name in FIGURES:
    shutil.copy(workdir / "figures" / name, out / "figures" / name)
  ft = results.load(workdir, "finetune")
  gt = truth.ground_truth(ft)
  gt = gt[(gt["target"] == audio_scale.TARGET) & (gt["setting"] == "full")]
  base = gt[gt["source"].isin(truth.NON_SOURCES)]
  gt = gt[~gt["source"].isin(truth.NON_SOURCES)]
  gt = gt[gt["step"] == gt.groupby(["source", "seed"])["step"].transform("max")]
  sc = results.load(workdir, "scores")
  sc = sc[
    (sc["target"] == audio_scale.TARGET)
    & (sc["probe"] == "train")
    & sc["layer"].isin([audio_scale.PLOT_LAYER, "-"])
    & sc["score"].isin(audio_scale.PLOT_SCORES)
  ]
  wide = sc.pivot_table(index=["source", "seed", "step"], columns="score", values="value")
  cols = ["source", "seed", "step", "final_acc", "best_acc", "log_auc", "n_ft_seeds", "complete"]
  cells = gt[cols].merge(wide.reset_index(), on=["source", "seed", "step"], how="left")
  rung = [audio_scale.LADDER.get(s, (np.nan, np.nan)) for s in cells["source"]]
  cells["num_classes"], cells["per_class"] = [r[0] for r in rung], [r[1] for r in rung]
  cells.sort_values(["source", "seed"]).to_csv(out / "per_seed.csv", index=False)
  base[["source", "seed", "final_acc", "best_acc", "log_auc", "n_ft_seeds"]].to_csv(
    out / "baselines.csv", index=False
  )
  flatness(ft, audio_scale.TARGET).to_csv(out / "flatness.csv", index=False)


def flatness(ft: pd.DataFrame, target: str) -> pd.DataFrame:
  """Per source: the mean fine-tune test-accuracy curve's last two evaluations, the rise between
  them and the share of curves whose last evaluation is their best (still rising: not flat)."""
  from jtransfer.analysis import truth  # noqa: PLC0415

  cur = truth.curves(ft)
  cur = cur[(cur["target"] == target) & (cur["setting"] == "full")]
  rows = []
  for source, g in cur.groupby("source"):
    mean = g.groupby("ft_step")["test_acc"].mean().sort_index()
    per = g.sort_values("ft_step").groupby(["seed", "step"])["test_acc"]
    rows.append({
      "source": source,
      "prev_step": int(mean.index[-2]),
      "acc_prev": float(mean.iloc[-2]),
      "last_step": int(mean.index[-1]),
      "acc_last": float(mean.iloc[-1]),
      "rise": float(mean.iloc[-1] - mean.iloc[-2]),
      "share_last_is_best": float((per.last() >= per.max()).mean()),
    })  # fmt: skip
  return pd.DataFrame(rows)


def not_flat(d: pathlib.Path) -> str:
  """'' when the pre-trained sources' mean curves rose by < 0.01 over their last evaluation
  interval, else a clause saying they did not flatten."""
  f = pd.read_csv(d / "flatness.csv")
  f = f[~f["source"].isin(("scratch", "random_init"))]
  if f["rise"].max() < 0.01:
    return ""
  return (
    f"; fine-tuning had not converged: the mean curves still rose {f['rise'].min():+.3f} to "
    f"{f['rise'].max():+.3f} between steps {int(f['prev_step'].iloc[0])} and "
    f"{int(f['last_step'].iloc[0])}"
  )


def cells(d: pathlib.Path, value: str) -> dict[str, np.ndarray]:
  """{source: `value` per pre-training seed} from per_seed.csv."""
  t = pd.read_csv(d / "per_seed.csv").sort_values("seed")
  return {s: g[value].to_numpy(float) for s, g in t.groupby("source")}


def bootstrap(cell: dict, statistic, *, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
  """`statistic(mean)` over resamples that draw each source's seeds with replacement,
  independently per source; `mean(source)` is the resample's mean for that source."""
  rng = np.random.default_rng(seed)
  out = np.empty(n_boot)
  for b in range(n_boot):
    draw = {s: v[rng.integers(0, len(v), len(v))] for s, v in sorted(cell.items())}
    out[b] = statistic(lambda s, draw=draw: draw[s].mean())
  return out


def slope(mean, ladder, xs) -> float:
  """Least-squares slope of the sources' means against log2 of the rung (per doubling)."""
  return float(np.polyfit(np.log2(xs), [mean(s) for s in ladder], 1)[0])


def rungs(d: pathlib.Path, ladder, column: str) -> list[float]:
  t = pd.read_csv(d / "per_seed.csv").drop_duplicates("source").set_index("source")
  return [float(t.loc[s, column]) for s in ladder]


def interval(cell, statistic) -> tuple[float, float, float]:
  est = statistic(lambda s: cell[s].mean())
  lo, hi = np.percentile(bootstrap(cell, statistic), [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
  return float(est), float(lo), float(hi)


def _verdict(lo: float, hi: float) -> tuple[str, str]:
  """(decided, agrees) for a claim that the statistic is > 0."""
  if lo > 0:
    return "yes", "yes"
  if hi < 0:
    return "yes", "no"
  return "no", "–"


def _fmt(est, lo, hi) -> str:
  return f"{est:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def findings(d: pathlib.Path) -> pd.DataFrame:
  """claim | paper | jtransfer (interval) | decided? | agrees? | why not, from the CSVs in d."""
  by_value = {v: cells(d, v) for v in VALUES}
  unconverged = not_flat(d)
  n_seeds = min(len(v) for v in by_value["final_acc"].values())
  rows = []
  ladders = (
    ("more source classes help (class ladder 2 → 5 → 10 digits, 180 clips per class)",
     CLASS_LADDER, "num_classes",
     "total data grows with the classes on this ladder (360 → 1,800 clips)"),
    ("more samples per class help (sample ladder 10 → 45 → 180 clips per class, 10 digits)",
     SAMPLE_LADDER, "per_class", "equal pre-training steps: the 100-clip source sees ~96 epochs"),
  )  # fmt: skip
  for claim, ladder, column, caveat in ladders:
    xs = rungs(d, ladder, column)
    parts, verdicts = [], []
    for value in VALUES:
      cell = by_value[value]
      est, lo, hi = interval(cell, lambda mean, ladder=ladder, xs=xs: slope(mean, ladder, xs))
      means = " → ".join(f"{cell[s].mean():.4f}" for s in ladder)
      parts.append(f"{value}: {means}; slope per doubling {_fmt(est, lo, hi)}")
      verdicts.append(_verdict(lo, hi))
    decided, agrees = verdicts[0]
    rows.append({
      "claim": claim,
      "paper": "abstract: increasing the number of samples and classes in the pre-training "
      "data both have a positive impact on transfer",
      "jtransfer": "; ".join(parts) + f" (n = {n_seeds} pre-training seeds per source)",
      "decided": decided,
      "agrees": agrees,
      "why_not": ("" if decided == "yes" else "the slope's interval holds 0")
      + f" ({caveat}){unconverged}",
    })  # fmt: skip

  parts, verdicts = [], []
  for value in VALUES:
    cell = by_value[value]
    est, lo, hi = interval(cell, lambda mean: mean(SMALLEST_SIMILAR) - mean(DISSIMILAR))
    digit = [s for s in cell if s != DISSIMILAR]
    beats = sum(cell[s].mean() > cell[DISSIMILAR].mean() for s in digit)
    parts.append(
      f"{value}: {SMALLEST_SIMILAR} − {DISSIMILAR} {_fmt(est, lo, hi)}; "
      f"{beats} of {len(digit)} digit sources above the speaker source"
    )
    verdicts.append(_verdict(lo, hi))
  decided, agrees = verdicts[0]
  rows.append({
    "claim": "similarity of the source task to the target surpasses scale: the digit task on "
    "100 clips transfers better than the speaker task on all 1,800 clips of the same audio",
    "paper": "abstract: generally surpassed by similarity between pre-training and the "
    "downstream task",
    "jtransfer": "; ".join(parts),
    "decided": decided,
    "agrees": agrees,
    "why_not": ("" if decided == "yes" else "the difference's interval holds 0") + unconverged,
  })  # fmt: skip
  return pd.DataFrame(rows)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("workdir", type=pathlib.Path)
  p.add_argument("--name", default="audio_scale")
  args = p.parse_args()
  out = ROOT / "docs" / "results" / args.name
  export(args.workdir, out)
  findings_table.write(findings(out), out, "Findings: the audio scale/ontology abstract")
  print(out / "findings.md")


if __name__ == "__main__":
  main()
