r"""Score every checkpoint of a zoo on MNIST: every tap, every score (thesis section 2.3.2).

  python launch/score.py --config configs/score_mnist.py:quick --workdir runs/zoo_quick
  python launch/score.py --config configs/score_mnist.py --workdir runs/zoo

The workdir must hold a zoo (`launch/pretrain.py`, or the sweep's pre-train stage). The thesis
probe: 500 MNIST training images, 50 per class, the same for every checkpoint. Rows land in
`results.load(workdir, "scores")`: one per (checkpoint, target, probe, layer, score), plus the
layer-free ones (layer "-": leep, nce, checkpoint_index, param_count). A rerun skips finished
checkpoints. `quick` scores two taps on a 200-image probe (minutes on a 2-core CPU for a quick
zoo of a few dozen checkpoints); the full variant adds the held-out (test split) probe.
"""

import ml_collections


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in ("full", "quick"):
    raise ValueError(f"unknown variant {arg!r}; valid: full, quick")
  c = ml_collections.ConfigDict()
  c.targets = ("mnist",)
  c.probe_per_class = 50  # thesis: 500 probe images, 50 per class
  c.probe_split = "train"
  c.probe_seed = 0
  c.heldout_probe = True  # also score 50 per class of the test split (probe "heldout")
  c.layers = ()  # () = every tap of the architecture
  c.scores = ()  # () = every score (registry + checkpoint_index, param_count)
  c.memory_budget_gb = 2.0  # bound on one checkpoint group's activations
  c.batch_size = 250  # probe samples per forward pass
  c.parallel = "auto"  # "vmap" on GPU/TPU, "map" on CPU (see jtransfer/extract.py)
  if arg == "quick":
    c.probe_per_class = 20
    c.heldout_probe = False
    c.layers = ("pool2", "fc1")
  return c
