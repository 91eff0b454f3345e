"""Which models are not independent: shared initialisations and the clusters to resample.

- Every source's step-0 checkpoint of one (arch, seed) is the same network (one initialisation
  for all sources): it has identical scores and, fine-tuned with the same seed, an identical
  curve. Pooled over sources it would count once per source. `merge_shared_init` keeps one copy,
  renamed source SHARED_INIT, with `n_shared` = how many sources it stood for.
- The checkpoints of one pre-training run are nested; `cluster_labels` names the unit a
  cluster bootstrap resamples: the run (source, seed) when seeds are kept, the source when seeds
  were averaged (its models then mix every run of the source). The shared initialisation is a
  cluster of its own.
"""

import numpy as np
import pandas as pd

SHARED_INIT = "init (shared)"
_RTOL, _ATOL = 1e-6, 1e-9  # Same network: equal up to float noise of different batchings.
_VALUE_COLS = ("oriented", "log_auc", "final_acc", "best_acc", "test_acc")
_ROW_KEYS = ("target", "setting", "probe", "layer", "score", "ft_step")


def _row_prints(start: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
  """Per row of `start`: its key as one string (the row keys, NUL-joined) and its values.

  Made once per merge: converting each source's few rows to strings on their own cost a
  pandas round trip per (group, source), most of the evaluate stage's merging time."""
  keys = [c for c in _ROW_KEYS if c in start]
  key = np.full(len(start), "", dtype=object)
  if keys:
    text = start[keys].astype(str)
    key = text[keys[0]].str.cat([text[k] for k in keys[1:]], sep="\0").to_numpy(dtype=object)
  return key, start[[c for c in _VALUE_COLS if c in start]].to_numpy(dtype=float)


def _fingerprint(
  pos: np.ndarray, prints: tuple[np.ndarray, np.ndarray]
) -> tuple[tuple, np.ndarray]:
  # One source's rows in the order of their keys: two sources agree when their key sets and
  # the values in that order do.
  key, vals = prints
  order = pos[np.argsort(key[pos], kind="stable")]
  return tuple(key[order]), vals[order]


def _same(a, b) -> bool:
  return a[0] == b[0] and np.allclose(a[1], b[1], rtol=_RTOL, atol=_ATOL, equal_nan=True)


def merge_shared_init(
  joint: pd.DataFrame, model_keys: list[str], *, per_score: bool = True
) -> pd.DataFrame:
  """The joint table with duplicated step-0 models counted once (see the module docs).

  Only step-0 models whose rows (score and truth) of a (target, setting, probe, layer, score)
  agree are merged there: sources whose step-0 models differ (different initialisations) are left
  alone. Adds `n_shared` (1 = not shared).
  """
  out = joint.assign(n_shared=1)
  start = out[out["step"] == 0]
  if start.empty:
    return out
  # Compared within one (target, setting, probe): a context where the copies agree is merged
  # even if float noise of another context (e.g. a frozen fine-tune) keeps them apart there.
  group_keys = [k for k in model_keys if k not in ("source", "step")]
  # Per (layer, score) too: a 5-class source's step 0 has its own head (its LEEP differs) but
  # the same trunk (its feature scores and fine-tune curves do not), so it is one model for the
  # feature scores and its own model for LEEP; every table that merges counts it the same way.
  contexts = ("target", "setting", "probe") + (("layer", "score") if per_score else ())
  group_keys += [c for c in contexts if c in start]
  drop, relabel = [], {}
  row_prints = _row_prints(start)
  start = start.assign(_pos=np.arange(len(start)))
  for _, grp in start.groupby(group_keys, dropna=False) if group_keys else [(None, start)]:
    prints = {
      src: _fingerprint(rows["_pos"].to_numpy(), row_prints) for src, rows in grp.groupby("source")
    }
    classes: list[list] = []
    for src, fp in prints.items():
      home = next((c for c in classes if _same(prints[c[0]], fp)), None)
      home.append(src) if home is not None else classes.append([src])
    for members in classes:
      if len(members) > 1:
        idx = grp.index[grp["source"].isin(members)]
        keep = grp.index[grp["source"] == members[0]]
        drop += list(idx.difference(keep))
        relabel.update({i: len(members) for i in keep})
  out = out.drop(index=drop)
  if relabel:
    idx = list(relabel)
    out.loc[idx, "n_shared"] = [relabel[i] for i in idx]
    out.loc[idx, "source"] = SHARED_INIT
  return out


def cluster_labels(joint: pd.DataFrame, *, keep_seeds: bool) -> np.ndarray:
  """One label per row: the run (source/seed) when seeds are kept, else the source."""
  src = joint["source"].astype(str)
  if keep_seeds and "seed" in joint:
    return (src + "/" + joint["seed"].astype(str)).to_numpy()
  return src.to_numpy()


def shared_summary(joint: pd.DataFrame) -> str:
  """A sentence for the report's notes, or "" when nothing was shared."""
  if "n_shared" not in joint:
    return ""
  shared = joint[joint["n_shared"] > 1]
  if shared.empty:
    return ""
  per_model = shared.drop_duplicates([c for c in ("arch", "seed") if c in shared])
  counts = ", ".join(sorted({str(int(x)) for x in shared["n_shared"]}))
  return (
    f"{len(per_model)} step-0 model(s) shared between sources (the same initialisation: "
    f"identical scores and curves; {counts} sources each) are counted once, as source "
    f"`{SHARED_INIT}`, in the pooled correlations and selection."
  )
