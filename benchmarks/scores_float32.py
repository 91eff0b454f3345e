r"""float32 vs float64 relative error of every feature score under offsets and scales.

  PYTHONPATH=$PWD python benchmarks/scores_float32.py            # this checkout
  PYTHONPATH=/path/to/other/checkout python benchmarks/scores_float32.py   # e.g. before a change

For each realistic probe (tests/scores_probes.py) and transform scale·(F + offset·spread·c), the
float32 input X is scored in float32 and, as float64(X) (the very same numbers), in float64;
shift-invariant scores get their float64 reference on float64(X) − mean. Prints the worst
relative error |v32 − v64| / max(|v64|, 1e-6) per score and transform over the probes ("err"
where float32 raised, e.g. a non-finite result).
"""

import importlib.util
import pathlib

import jax
import numpy as np

import jtransfer.scores as scores
from jtransfer.scores import registry


def _load_probes():
  """tests/scores_probes.py, by path: the tests folder is no package (and no sys.path entry)."""
  path = pathlib.Path(__file__).resolve().parents[1] / "tests" / "scores_probes.py"
  spec = importlib.util.spec_from_file_location("scores_probes", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


scores_probes = _load_probes()

NAMES = [n for n, s in registry.REGISTRY.items() if not s.needs_source_probs]
TRANSFORMS = [(0, 1), (100, 1), (1e4, 1), (0, 1e-8), (0, 1e8), (1e4, 1e-8), (1e4, 1e8)]


def _scores(x, labels, c, name=None):
  names = [name] if name else NAMES
  try:
    return {k: float(v) for k, v in scores.compute(x, labels, num_classes=c, names=names).items()}
  except Exception as e:  # noqa: BLE001 -- reported in the table
    if name is None:  # retry one by one to find which failed
      out = {}
      for n in NAMES:
        out.update(_scores(x, labels, c, n))
      return out
    return {name: f"{type(e).__name__}: {str(e)[:60]}"}


def main():
  worst = {(n, t): 0.0 for n in NAMES for t in TRANSFORMS}
  for probe, make in scores_probes.PROBES.items():
    feats, labels = make()
    c = int(labels.max()) + 1
    for t in TRANSFORMS:
      x32 = scores_probes.transform(feats, *t).astype(np.float32)
      v32 = _scores(x32, labels, c)
      jax.config.update("jax_enable_x64", True)
      x64 = x32.astype(np.float64)
      ref = _scores(x64, labels, c)
      ref_c = _scores(x64 - x64.mean(axis=0), labels, c)
      jax.config.update("jax_enable_x64", False)
      for n in NAMES:
        r = ref_c[n] if "shift" in scores_probes.INVARIANCES[n] else ref[n]
        if isinstance(v32[n], str) or isinstance(r, str):
          worst[n, t] = "err"
          if isinstance(v32[n], str):
            print(f"  {probe} {t} {n}: {v32[n]}")
          continue
        if worst[n, t] != "err":
          worst[n, t] = max(worst[n, t], abs(v32[n] - r) / max(abs(r), 1e-6))
  head = "score".ljust(18) + "".join(f"{f'+{o:g}, x{s:g}':>14}" for o, s in TRANSFORMS)
  print(head)
  for n in NAMES:
    cells = [worst[n, t] for t in TRANSFORMS]
    print(n.ljust(18) + "".join(f"{v:>14.2e}" if v != "err" else f"{v:>14}" for v in cells))


if __name__ == "__main__":
  main()
