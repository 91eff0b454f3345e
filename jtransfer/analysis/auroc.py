"""AUROC for binary targets, and the NC paper's score-vs-performance comparison.

The neural-collapse paper (`../shared/papers/neural-collapse-transferability-scores.txt`)
measures a fine-tuned model on its binary target (COVID-19 from coughs) by the area under the
ROC curve of the positive-class probability, and compares NC score, LEEP and LogME by the
Pearson coefficient between score and performance (its figures 2-3 quote |r|), for head-only and
full fine-tuning.

- `auroc(positive_score, labels)`: the Mann-Whitney form, float64, ties counted one half:
  AUROC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg), R_pos the sum of the positives'
  average ranks. Equals P(s+ > s-) + P(s+ = s-) / 2 over all (positive, negative) pairs.
- `positive_probability(logits)`: softmax(logits)[:, 1], computed stably in float64.
- `model_auroc(graphdef, params, rest, inputs, labels)`: one model's AUROC on a data set.
- `finetune_auroc(workdir, target, ...)`: AUROC of every fine-tuned model of a binary target.
  The fine-tune job stores accuracy and loss curves only, not the models, so this re-runs the
  fine-tune job's units (`jtransfer.train.finetune`: the same checkpoints, shared head init,
  data order and freezing, hence the same final models) and evaluates the final model's AUROC
  on the target's test split. Rows carry `test_acc` too: it equals the fine-tune table's final
  accuracy, a check that the same models were evaluated. Written to
  `<workdir>/auroc_<target>.csv` (resumable: finished rows are kept).
- `compare(scores, performance, ...)`: Pearson / Spearman of every (score, layer, mode) with a
  performance column over models (seeds averaged), oriented by the score's sign convention.
- `nc_comparison(workdir, ...)`: the whole comparison as `<workdir>/nc_comparison.md` + CSV.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sp_stats

from jtransfer.analysis import signs
from jtransfer.analysis.stats import correlate

NC_SCORES = ("nc_score", "leep", "logme")
_UNIT = ("source", "arch", "seed", "step", "mode", "frozen_layers", "ft_seed")


# -- the metric -----------------------------------------------------------------------------


def auroc(positive_score, labels) -> float:
  """Area under the ROC curve of `positive_score` for binary `labels` (1 = positive)."""
  s = np.asarray(positive_score, dtype=np.float64)
  y = np.asarray(labels)
  if s.ndim != 1 or y.shape != s.shape:
    raise ValueError(f"scores and labels must be 1-D of equal length, got {s.shape}, {y.shape}")
  if s.size == 0:
    raise ValueError("AUROC of an empty set")
  if not np.all(np.isfinite(s)):
    raise ValueError("scores contain NaN or Inf")
  if not np.all((y == 0) | (y == 1)):
    raise ValueError(f"labels must be 0 or 1, got values {np.unique(y)[:5].tolist()}")
  pos = y == 1
  n_pos, n_neg = int(pos.sum()), int((~pos).sum())
  if n_pos == 0 or n_neg == 0:
    raise ValueError(f"AUROC needs both classes; got {n_pos} positives and {n_neg} negatives")
  ranks = sp_stats.rankdata(s)  # average ranks: a tie between classes counts one half
  return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def positive_probability(logits) -> np.ndarray:
  """softmax(logits)[:, 1] in float64 (logits [N, 2])."""
  z = np.asarray(logits, dtype=np.float64)
  if z.ndim != 2 or z.shape[1] != 2:
    raise ValueError(f"AUROC needs two-class logits [N, 2], got shape {z.shape}")
  # p1 = 1 / (1 + exp(z0 - z1)), via expit: no overflow for large logit gaps.
  from scipy.special import expit  # noqa: PLC0415

  return expit(z[:, 1] - z[:, 0])


def model_auroc(graphdef, params, rest, inputs, labels, *, batch_size: int = 500) -> float:
  """AUROC of one (unstacked) model's positive-class probability on `inputs`."""
  import jax  # noqa: PLC0415 (the statistics above need no JAX)

  from jtransfer.models import functional  # noqa: PLC0415

  fwd = jax.jit(lambda p, r, x: functional.apply(graphdef, p, r, x, train=False)[0])
  logits = [
    np.asarray(fwd(params, rest, inputs[i : i + batch_size]))
    for i in range(0, len(inputs), batch_size)
  ]
  return auroc(positive_probability(np.concatenate(logits)), labels)


# -- AUROC of fine-tuned models -------------------------------------------------------------


def finetune_auroc(
  workdir: str | os.PathLike,
  target: str,
  *,
  modes: Sequence[str] = ("full",),
  ft_seeds: Sequence[int] = (0,),
  duration: Mapping[str, float] | None = None,
  batch_size: int = 64,
  optimizer: str = "adam",
  optimizer_kwargs: Mapping[str, Any] | None = None,
  model_kwargs: Mapping[str, Any] | None = None,
  sources: Sequence[str] | None = None,
  steps: Sequence[int] | None = None,
  baselines: bool = True,
  eval_examples: int | None = None,
  train_examples: int | None = None,
  group_size: int = 16,
  data_dir: str | os.PathLike | None = None,
  eval_batch_size: int = 1000,
  show_progress: bool = False,
  **unused,
) -> pd.DataFrame:
  """AUROC (and accuracy) of the final fine-tuned model of every unit; see the module doc.

  Takes the fine-tune job's keyword arguments (extra ones, e.g. `eval_train_examples`, are
  ignored) so a config can pass its `finetune` dict unchanged.
  """
  import jax  # noqa: PLC0415

  from jtransfer.train import finetune as ft  # noqa: PLC0415

  del unused
  workdir = pathlib.Path(workdir)
  out_path = workdir / f"auroc_{target}.csv"
  duration = dict(duration or {"epochs": 100})
  optimizer_kwargs = dict(optimizer_kwargs or {"learning_rate": 1e-4})
  tgt = ft.load_target(
    target,
    data_dir=data_dir,
    train_examples=train_examples,
    batch_size=batch_size,
    duration=duration,
    eval_final=True,
  )
  if tgt.num_classes != 2:
    raise ValueError(f"AUROC needs a binary target; {target!r} has {tgt.num_classes} classes")
  test_x, test_y = tgt.test
  if eval_examples is not None:
    test_x, test_y = test_x[:eval_examples], test_y[:eval_examples]
  # The fine-tune job evaluates its curves on the test prefix; so does this.
  tgt = ft.Target(
    tgt.name, 2, tgt.train, (test_x, test_y), tgt.steps_per_epoch, tgt.total_steps, tgt.eval_steps
  )

  done = pd.read_csv(out_path) if out_path.exists() else pd.DataFrame(columns=[*_UNIT])
  done_keys = {tuple(r) for r in done[list(_UNIT)].astype(str).itertuples(index=False)}
  ckpts = ft.select_checkpoints(workdir, sources=sources, steps=steps)
  rows = []
  devices = jax.local_devices()
  for arch in sorted({c["arch"] for c in ckpts}):
    kwargs = ft.pretrain_model_kwargs(workdir, arch) if model_kwargs is None else model_kwargs
    info = ft.arch_info(arch, num_classes=2, model_kwargs=kwargs)
    members = ft.plan_members(
      [c for c in ckpts if c["arch"] == arch],
      info=info,
      modes=modes,
      ft_seeds=[int(s) for s in ft_seeds],
      baselines=baselines,
    )

    def unit_keys(m):
      return [
        tuple(str(v) for v in (m.source, m.arch, m.seed, m.step, mode, m.frozen_layers, m.ft_seed))
        for mode in m.modes
      ]

    members = [m for m in members if not set(unit_keys(m)) <= done_keys]
    trainer = None
    for group in ft.group_members(members, group_size):
      graphdef, params, rest = ft.initial_state(
        group, workdir=workdir, num_classes=2, model_kwargs=info.model_kwargs
      )
      if trainer is None:
        # The fine-tune job's compiled steps (private class; see the module docstring).
        trainer = ft._Trainer(
          graphdef=graphdef,
          layers=info.layers,
          optimizer=optimizer,
          optimizer_kwargs=optimizer_kwargs,
          batch_size=batch_size,
          devices=devices,
          seed_parallel="auto",
          steps_per_epoch=tgt.steps_per_epoch,
        )
      curves, final = ft.train_group(
        group,
        graphdef=graphdef,
        params=params,
        rest=rest,
        target=tgt,
        trainer=trainer,
        eval_examples=None,
        eval_train_examples=None,
        eval_batch_size=eval_batch_size,
      )
      last = curves[max(curves)]
      for i, m in enumerate(group):
        p_i = jax.tree.map(lambda a, i=i: a[i], final["params"])
        r_i = jax.tree.map(lambda a, i=i: a[i], final["rest"])
        value = model_auroc(graphdef, p_i, r_i, test_x, test_y)
        for mode in m.modes:
          rows.append(
            dict(
              source=m.source, arch=m.arch, seed=m.seed, step=m.step, target=target,
              mode=mode, frozen_layers=m.frozen_layers, ft_seed=m.ft_seed,
              ft_step=int(max(curves)), test_auroc=value,
              test_acc=float(last["test_acc"][i]),
            )
          )  # fmt: skip
      if show_progress:
        print(f"[auroc] {target}: {len(rows)} units", flush=True)
      # Written after every group, so an interrupted run keeps what it finished.
      frame = pd.concat([done, pd.DataFrame(rows)], ignore_index=True)
      tmp = out_path.with_suffix(".csv.tmp")
      frame.to_csv(tmp, index=False)
      os.replace(tmp, out_path)
  return pd.concat([done, pd.DataFrame(rows)], ignore_index=True) if rows else done


# -- score vs performance -------------------------------------------------------------------


def compare(
  scores: pd.DataFrame,
  performance: pd.DataFrame,
  *,
  metric: str,
  score_names: Sequence[str] = NC_SCORES,
  probe: str = "train",
  n_boot: int = 200,
  embedding: Mapping[str, str] | None = None,
) -> pd.DataFrame:
  """One row per (target, mode, layer, score): Pearson r (and |r|), Spearman, n.

  `scores`: the scores table; `performance`: one row per fine-tuned unit with `metric` (e.g.
  the final `test_acc`, or `test_auroc`). Seeds (pre-train and fine-tune) are averaged first;
  layer-less scores (LEEP, layer "-") are compared once. Coefficients are oriented by the
  score's sign ("lower is better" scores are negated), so r > 0 means the score ranks models as
  fine-tuning does; `abs_pearson` is the NC paper's |r|. `embedding` {arch: layer} adds a
  layer "embedding" made of each architecture's own layer (models of several architectures
  have no common tap but the classifier's input).
  """
  sign = signs.sign_table()
  s = scores[(scores["score"].isin(score_names)) & (scores["probe"] == probe)]
  if embedding:
    emb = s[[embedding.get(a) == layer for a, layer in zip(s["arch"], s["layer"], strict=True)]]
    s = pd.concat([s, emb.assign(layer="embedding")], ignore_index=True)
  s = s[np.isfinite(s["value"].astype(float))]
  s = s.groupby(["source", "arch", "step", "target", "layer", "score"], as_index=False)[
    "value"
  ].mean()
  perf = performance[~performance["source"].isin(("scratch", "random_init"))]
  perf = perf.groupby(["source", "arch", "step", "target", "mode"], as_index=False)[metric].mean()
  joint = s.merge(perf, on=["source", "arch", "step", "target"])
  out = []
  for (target, mode, layer, name), g in joint.groupby(["target", "mode", "layer", "score"]):
    r = correlate(
      g["value"].to_numpy(float),
      g[metric].to_numpy(float),
      higher_is_better=sign.get(name, True),
      n_boot=n_boot,
    )
    out.append(
      dict(
        target=target, mode=mode, layer=layer, score=name, metric=metric, n=r["n"],
        pearson=r["pearson"], abs_pearson=abs(r["pearson"]), spearman=r["spearman"],
        flag=r["flag"],
      )
    )  # fmt: skip
  return pd.DataFrame(out)


def final_accuracy(finetune: pd.DataFrame) -> pd.DataFrame:
  """The fine-tune table's last evaluated step per unit (`test_acc` column)."""
  last = finetune.groupby(list(_UNIT) + ["target"])["ft_step"].transform("max")
  return finetune[finetune["ft_step"] == last]


def nc_comparison(
  workdir: str | os.PathLike,
  *,
  auroc_targets: Sequence[str] = (),
  score_names: Sequence[str] = NC_SCORES,
  probe: str = "train",
  n_boot: int = 200,
  embedding: Mapping[str, str] | None = None,
) -> pathlib.Path:
  """`<workdir>/nc_comparison.md` (+ .csv): score vs final accuracy for every target, and vs
  AUROC for `auroc_targets` (read from `auroc_<target>.csv`, see `finetune_auroc`)."""
  from jtransfer import results  # noqa: PLC0415

  workdir = pathlib.Path(workdir)
  scores = results.load(workdir, "scores")
  finetune = results.load(workdir, "finetune")
  if scores.empty or finetune.empty:
    raise ValueError(f"{workdir}: run the score and fine-tune stages first")
  tables = [
    compare(scores, final_accuracy(finetune), metric="test_acc", score_names=score_names,
            probe=probe, n_boot=n_boot, embedding=embedding)
  ]  # fmt: skip
  for target in auroc_targets:
    path = workdir / f"auroc_{target}.csv"
    if not path.exists():
      raise ValueError(f"{path} is missing: run finetune_auroc(workdir, {target!r}, ...) first")
    perf = pd.read_csv(path)
    if not (scores["target"] == target).any():
      raise ValueError(f"no scores for target {target!r} in {workdir}: run the score job on it")
    tables.append(
      compare(scores, perf, metric="test_auroc", score_names=score_names, probe=probe,
              n_boot=n_boot, embedding=embedding)
    )  # fmt: skip
  table = pd.concat(tables, ignore_index=True)
  table.to_csv(workdir / "nc_comparison.csv", index=False)
  lines = [
    "# NC score vs LEEP vs LogME (the neural-collapse paper's comparison)",
    "",
    "Pearson r between each score and the fine-tuned performance over the source models",
    "(seeds averaged; oriented so r > 0 means the score ranks models as fine-tuning does;",
    "|r| is what the paper's figures 2-3 quote). `head`: only the new classifier trains;",
    "`full`: every layer trains. Metric: final test accuracy, and AUROC of the positive-class",
    "probability for binary targets.",
    "",
  ]
  for (target, metric), g in table.groupby(["target", "metric"]):
    lines += [f"## {target}: {metric}", ""]
    piv = g.pivot_table(index=["score", "layer"], columns="mode", values="pearson")
    lines.append(_markdown(piv.reset_index()))
    lines.append("")
  path = workdir / "nc_comparison.md"
  path.write_text("\n".join(lines))
  return path


def _markdown(df: pd.DataFrame) -> str:
  cols = [str(c) for c in df.columns]
  fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
  rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  rows += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.itertuples(index=False)]
  return "\n".join(rows)
