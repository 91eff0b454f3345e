r"""Copies a finished gradual-transfer workdir's small outputs into docs/results/<name>/ and writes
its findings table against Fayek et al. (findings.csv, findings.md) from the copied CSVs.

  .venv/bin/python scripts/publish_gradual.py /work/jtransfer-runs/faithful [--name fayek_faithful]

per_seed.csv holds the seed-level cells every other number comes from (final test accuracy and
log-AUC per source, target, frozen layers l and pre-training seed, averaged over fine-tune
seeds). tests/results_fayek_faithful_test.py recomputes the findings from the copies.
"""

import argparse
import pathlib
import shutil
import sys

import numpy as np
import pandas as pd

from jtransfer.studies import findings as findings_table

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSVS = ("gradual_matrix.csv", "gradual_asymmetry.csv", "gradual_drops.csv", "gradual_slopes.csv")
FIGURES = ("gradual_transfer_final_acc.png", "gradual_matrix_final_acc.png",
           "gradual_transfer_log_auc.png")  # fmt: skip
VALUE = "final_acc"  # Fayek's measure: converged accuracy
RELATED = ("mnist_split_0_4", "mnist_split_5_9")  # one domain, disjoint classes
UNRELATED = ("fashion_mnist", "mnist")  # two domains
N_BOOT, ALPHA = 2_000, 0.05
N_BOOT_ADJUSTED = 20_000  # Bonferroni tails of 0.05 / 8: 62 resamples beyond each end
NO_DROP = -0.01  # "insignificant drop": the interval stays above one point of accuracy lost


def export(workdir: pathlib.Path, out: pathlib.Path) -> None:
  sys.path.insert(0, str(ROOT))
  from jtransfer.analysis import truth  # noqa: PLC0415
  from jtransfer.store import results  # noqa: PLC0415
  from jtransfer.studies import gradual  # noqa: PLC0415

  (out / "figures").mkdir(parents=True, exist_ok=True)
  for name in CSVS:
    shutil.copy(workdir / name, out / name)
  for name in FIGURES:
    shutil.copy(workdir / "figures" / name, out / "figures" / name)
  gt = truth.ground_truth(results.load(workdir, "finetune"))
  gt = gt[gt["complete"]]
  rows = []
  for value in gradual.VALUES:
    for (source, target, frozen), v in gradual.per_seed(gt, value).items():
      rows += [
        {"value": value, "source": source, "target": target, "frozen": frozen, "seed": i, "y": y}
        for i, y in enumerate(v)
      ]
  pd.DataFrame(rows).to_csv(out / "per_seed.csv", index=False)
  scratch = gt[gt["source"] == "scratch"].groupby("target")[list(gradual.VALUES)]
  scratch.agg(["mean", "std", "count"]).to_csv(out / "scratch.csv")


def cells(d: pathlib.Path) -> dict[tuple, np.ndarray]:
  """{(source, target, l): final accuracy per pre-training seed} from per_seed.csv."""
  t = pd.read_csv(d / "per_seed.csv")
  t = t[t["value"] == VALUE].sort_values("seed")
  return {k: g["y"].to_numpy(float) for k, g in t.groupby(["source", "target", "frozen"])}


def bootstrap(cell: dict, statistic, *, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
  """`statistic(mean)` over resamples in which each source's pre-training seeds are drawn with
  replacement, independently per source (a seed's curves on both targets start from one
  network, so they are drawn together); `mean(source, target, l)` is that resample's mean."""
  rng = np.random.default_rng(seed)
  n = {s: len(v) for (s, _, _), v in cell.items()}
  out = np.empty(n_boot)
  for b in range(n_boot):
    draw = {s: rng.integers(0, k, k) for s, k in sorted(n.items())}
    out[b] = statistic(lambda s, t, f, draw=draw: cell[(s, t, f)][draw[s]].mean())
  return out


def _mean(cell):
  return lambda s, t, f: cell[(s, t, f)].mean()


def drop(mean, a, b, f):
  """Accuracy on B with A's first l layers frozen, minus B's self-transfer at the same l."""
  return mean(a, b, f) - mean(b, b, f)


def pair_drop(mean, pair, f):
  """The mean of both directions' drops of a pair at l."""
  a, b = pair
  return 0.5 * (drop(mean, a, b, f) + drop(mean, b, a, f))


def _interval(samples, level):
  lo, hi = np.percentile(samples, [100 * level / 2, 100 * (1 - level / 2)])
  return float(lo), float(hi)


def findings(d: pathlib.Path) -> pd.DataFrame:
  """claim | paper | jtransfer (interval) | decided? | agrees? | why not, from the CSVs in d."""
  cell = cells(d)
  point = _mean(cell)
  layers = sorted({f for _, _, f in cell})
  top = layers[-1]
  slopes = pd.read_csv(d / "gradual_slopes.csv")
  slopes = slopes[slopes["value"] == VALUE]
  drops = pd.read_csv(d / "gradual_drops.csv")
  drops = drops[(drops["value"] == VALUE) & (drops["kind"] == "drop")]
  rows = []

  s = slopes[slopes["kind"] == "slope"].sort_values(["a", "b"])
  falling = s[s["hi"] < 0]
  rising = s[s["lo"] > 0]
  rows.append({
    "claim": "the drop against self-transfer grows with the frozen layers l (slope < 0)",
    "paper": "Fayek 2: the drop is small where the frozen layers are relevant to B, larger "
    "where not (as Yosinski et al.: higher layers are more specific)",
    "jtransfer": "; ".join(f"{r.a}→{r.b} {r.estimate:+.4f} [{r.lo:+.4f}, {r.hi:+.4f}]"
                           for r in s.itertuples()) + " (accuracy per layer)",
    "decided": "yes" if len(falling) + len(rising) == len(s) else "no",
    "agrees": ("yes" if len(falling) == len(s) else "no" if len(rising) == len(s) else
               f"{len(falling)} of {len(s)} transfers"),
    "why_not": "" if len(falling) + len(rising) == len(s)
    else f"{len(s) - len(falling) - len(rising)} slope interval(s) hold 0",
  })  # fmt: skip

  # Fayek: relevant transferred layers give an insignificant drop, irrelevant ones a drop. At
  # l = 0 the related pair should lose nothing and the unrelated one may.
  d0 = drops[drops["frozen"] == layers[0]].sort_values(["a", "b"])
  related = d0["a"].isin(RELATED) & d0["b"].isin(RELATED)
  small, large = d0["lo"] >= NO_DROP, d0["hi"] < NO_DROP
  decided = bool((small | large).all())
  agrees = bool(small[related].all() and large[~related].all())
  rows.append({
    "claim": f"with l = {layers[0]} (the source as initialisation only) the related pair "
    f"(0-4 ↔ 5-9) loses nothing (interval above {NO_DROP:+.2f}), MNIST ↔ Fashion-MNIST does",
    "paper": "Fayek 2: relevant transferred layers give an insignificant or no drop, "
    "and vice versa",
    "jtransfer": "; ".join(f"{r.a}→{r.b} {r.estimate:+.4f} [{r.lo:+.4f}, {r.hi:+.4f}]"
                           for r in d0.itertuples()),
    "decided": "yes" if decided else "no",
    "agrees": ("yes" if agrees else "no") if decided else "–",
    "why_not": "" if decided else "intervals straddle the one-point margin",
  })  # fmt: skip

  # Nonsymmetry: per pair and l, Bonferroni over every (pair, l) cell tested.
  pairs = [RELATED, UNRELATED]
  m = len(pairs) * len(layers)
  parts, hits = [], 0
  for a, b in pairs:
    for f in layers:
      est = drop(point, a, b, f) - drop(point, b, a, f)
      lo, hi = _interval(
        bootstrap(
          cell,
          lambda mean, a=a, b=b, f=f: drop(mean, a, b, f) - drop(mean, b, a, f),
          n_boot=N_BOOT_ADJUSTED,
        ),
        ALPHA / m,
      )
      hits += lo > 0 or hi < 0
      parts.append(f"{a}↔{b} l={f}: {est:+.4f} [{lo:+.4f}, {hi:+.4f}]")
  rows.append({
    "claim": "layer-wise transferability can be nonsymmetric (asymmetry ≠ 0 somewhere)",
    "paper": "Fayek 4: nonsymmetric between two datasets or tasks",
    "jtransfer": f"drop(A→B) − drop(B→A), {100 * (1 - ALPHA / m):.2f} % intervals (Bonferroni "
    f"over {m} cells): " + "; ".join(parts) + f"; {hits} of {m} exclude 0",
    "decided": "yes" if hits else "no",
    "agrees": "yes" if hits else "–",
    "why_not": "" if hits else "every asymmetry interval holds 0: symmetric within the seeds' "
    "resolution (a 'can be' claim is not refuted by one study)",
  })  # fmt: skip

  est = pair_drop(point, RELATED, top) - pair_drop(point, UNRELATED, top)
  lo, hi = _interval(
    bootstrap(cell, lambda mean: pair_drop(mean, RELATED, top) - pair_drop(mean, UNRELATED, top)),
    ALPHA,
  )
  rows.append({
    "claim": "layer-wise transferability tracks task relatedness: the same-domain pair "
    f"(MNIST 0-4 ↔ 5-9) loses less than MNIST ↔ Fashion-MNIST at l = {top}",
    "paper": "Fayek 4: a proxy for quantifying task relatedness",
    "jtransfer": f"pair-mean drop at l = {top}: related {pair_drop(point, RELATED, top):+.4f},"
    f" unrelated {pair_drop(point, UNRELATED, top):+.4f}; difference {est:+.4f}"
    f" [{lo:+.4f}, {hi:+.4f}]",
    "decided": "yes" if lo > 0 or hi < 0 else "no",
    "agrees": "yes" if lo > 0 else "no" if hi < 0 else "–",
    "why_not": "" if lo > 0 or hi < 0 else "the difference's interval holds 0",
  })  # fmt: skip

  rows.append({
    "claim": "the tasks' relationship matters more than the architecture",
    "paper": "Fayek 4 (AlexNet- vs VGG-like on ASR ↔ SER)",
    "jtransfer": "not measured: one architecture (cnn_fc1) in this run",
    "decided": "no", "agrees": "–",
    "why_not": "needs ≥ 2 architectures on the same pairs (the audio pair with audio_cnn and a "
    "second model; configs/gradual_transfer.py:full has the audio family)",
  })  # fmt: skip
  return pd.DataFrame(rows)


def write_findings(d: pathlib.Path) -> None:
  findings_table.write(findings(d), d, f"{d.name}: findings (Fayek et al.)")


if __name__ == "__main__":
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("workdir", type=pathlib.Path)
  p.add_argument("--name", default="fayek_faithful")
  args = p.parse_args()
  out = ROOT / "docs" / "results" / args.name
  export(args.workdir, out)
  write_findings(out)
