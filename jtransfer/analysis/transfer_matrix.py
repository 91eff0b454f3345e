"""Layer-wise ("gradual") transfer (Fayek et al.): accuracy vs number of frozen layers for every
source → target pair, and its asymmetry A→B vs B→A."""

import numpy as np
import pandas as pd


def transfer_matrix(gt: pd.DataFrame, *, value: str = "final_acc") -> pd.DataFrame:
  """Mean (std, n over seeds) of `value` per (source, arch, target, frozen), using each source's
  longest pre-training step. Settings without a frozen-layer count (head, last_block) are left
  out; `full` counts as 0 frozen layers unless an explicit frozen=0 exists."""
  df = gt[np.isfinite(gt["frozen"].to_numpy(dtype=float))].copy()
  if df.empty:
    return pd.DataFrame(columns=["source", "arch", "target", "frozen", value, "std", "n"])
  explicit0 = set(df.loc[df["setting"] == "frozen=0", "target"])
  df = df[~((df["setting"] == "full") & df["target"].isin(explicit0))]
  last = df.groupby(["source", "arch"])["step"].transform("max")
  df = df[df["step"] == last]
  g = df.groupby(["source", "arch", "target", "frozen"])[value]
  out = g.mean().rename(value).to_frame()
  out["std"] = g.std(ddof=1)
  out["n"] = g.size()
  return out.reset_index()


def asymmetry(matrix: pd.DataFrame, *, value: str = "final_acc") -> pd.DataFrame:
  """For every unordered pair {A, B} with both A→B and B→A stored, per frozen count:
  `a_to_b`, `b_to_a`, and, where the self-transfers A→A and B→B exist, the drops relative to them
  and `asymmetry` = drop(A→B) − drop(B→A) (comparable across targets of different difficulty);
  otherwise `asymmetry` is the raw difference."""
  m = matrix.groupby(["source", "target", "frozen"])[value].mean()
  pairs = {(s, t) for s, t, _ in m.index if s != t}
  rows = []
  for a, b in sorted(pairs):
    if a > b or (b, a) not in pairs:
      continue
    for f in sorted({fr for s, t, fr in m.index if (s, t) == (a, b)}):
      if (b, a, f) not in m.index:
        continue
      ab, ba = float(m[(a, b, f)]), float(m[(b, a, f)])
      row = dict(a=a, b=b, frozen=f, a_to_b=ab, b_to_a=ba)
      if (b, b, f) in m.index and (a, a, f) in m.index:
        row["drop_a_to_b"] = ab - float(m[(b, b, f)])
        row["drop_b_to_a"] = ba - float(m[(a, a, f)])
        row["asymmetry"] = row["drop_a_to_b"] - row["drop_b_to_a"]
      else:
        row["asymmetry"] = ab - ba
      rows.append(row)
  # Named columns even without pairs, so the CSV always has its header.
  columns = ["a", "b", "frozen", "a_to_b", "b_to_a", "drop_a_to_b", "drop_b_to_a", "asymmetry"]
  return pd.DataFrame(rows, columns=columns)
