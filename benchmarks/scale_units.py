"""Per-unit costs behind docs/scale.md: one thesis-CNN checkpoint's orbax save and restore (files
and bytes on disk), one process-local train state, and one store transaction holding a
checkpoint's score rows (as many rows as the tiny sweep writes per checkpoint and target).

  python benchmarks/scale_units.py --repeats 20

Random-init thesis-CNN params (the save cost does not depend on the values).
"""

import argparse
import pathlib
import tempfile
import time

import jax
import numpy as np

from jtransfer.models import functional
from jtransfer.store import checkpointing, results

# 2 probes x (6 taps x 11 feature scores + 4 per-checkpoint rows) = 140 rows, the tiny sweep's
# count per checkpoint and target (configs/thesis_cnn.py, heldout_probe=True).
_TAPS, _FEATURE_SCORES, _PER_CHECKPOINT, _PROBES = 6, 11, 4, 2


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--repeats", type=int, default=20)
  args = ap.parse_args()
  _, params, rest = functional.init_stacked("cnn", num_classes=10, seeds=[0])
  tree = checkpointing.with_rest(
    jax.tree.map(lambda a: np.asarray(a[0]), params), jax.tree.map(lambda a: np.asarray(a[0]), rest)
  )
  n = sum(x.size for x in jax.tree.leaves(tree))
  root = pathlib.Path(tempfile.mkdtemp())
  saves, restores = [], []
  for i in range(args.repeats):
    t = time.perf_counter()
    checkpointing.save(root / str(i), tree, extra={"step": i})
    saves.append(time.perf_counter() - t)
  for i in range(args.repeats):
    t = time.perf_counter()
    checkpointing.restore(root / str(i))
    restores.append(time.perf_counter() - t)
  files = [p for p in (root / "0").rglob("*") if p.is_file()]
  rows_per = _PROBES * (_TAPS * _FEATURE_SCORES + _PER_CHECKPOINT)
  store = results.Store(root, shard="host0")
  writes = []
  for i in range(args.repeats):
    rows = [
      dict(source="mnist", arch="cnn", seed=0, step=i, target="mnist", probe=f"p{r % _PROBES}",
           layer=f"l{r // _PROBES}", score="s", value=float(r))
      for r in range(rows_per)
    ]  # fmt: skip
    t = time.perf_counter()
    store.mark_done("score", f"k{i}", {"scores": rows})
    writes.append(time.perf_counter() - t)
  store.close()
  shard = root / "results.host0.sqlite"
  ms = lambda xs: f"{np.median(xs) * 1e3:.1f} ms"  # noqa: E731
  print(
    f"thesis CNN checkpoint: {n:,} values, {sum(p.stat().st_size for p in files):,} B in "
    f"{len(files)} files; save {ms(saves)}, restore {ms(restores)} (medians of {args.repeats})"
  )
  print(f"store: {rows_per} score rows + done marker per transaction {ms(writes)}; "
        f"{shard.stat().st_size / (rows_per * args.repeats):.0f} B per row on disk")  # fmt: skip


if __name__ == "__main__":
  main()
