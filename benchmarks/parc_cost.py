r"""PARC alone at growing N: time of one jitted run after a warm-up and the compiled program's
scratch memory (its N(N − 1)/2 pairs dominate both). Run from two checkouts for before/after:

  PYTHONPATH=<checkout> .venv/bin/python benchmarks/parc_cost.py --sizes 4000,8000
"""

import time

from absl import app, flags

_SIZES = flags.DEFINE_list("sizes", ["4000", "8000"], "Probe sizes N.")
_D = flags.DEFINE_integer("d", 64, "Features.")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jtransfer.scores import registry  # noqa: E402
from jtransfer.scores.shared import Shared  # noqa: E402


def main(_):
  c = 10
  fn = jax.jit(lambda f, labels: registry.REGISTRY["parc"].kernel(Shared(f, labels, c)))
  for n in map(int, _SIZES.value):
    rng = np.random.default_rng(0)
    y = np.arange(n) % c
    x = rng.normal(size=(n, _D.value)) + 0.5 * rng.normal(size=(c, _D.value))[y]
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)
    scratch = fn.lower(xj, yj).compile().memory_analysis().temp_size_in_bytes
    float(fn(xj, yj))
    start = time.perf_counter()
    value = float(fn(xj, yj))
    seconds = time.perf_counter() - start
    print(f"N={n} D={_D.value}: parc {value:.7g}, {seconds:.2f} s, scratch {scratch / 1e9:.2f} GB",
          flush=True)  # fmt: skip


if __name__ == "__main__":
  app.run(main)
