"""jtransfer's data layer: named datasets as NumPy arrays, derived thesis tasks, probes.

    from jtransfer import data
    x, y = data.load("mnist", "train")            # float32 NHWC in [0, 1], int32 labels
    x = data.normalize("mnist", x)                # the dataset's declared (x - mean) / std
    px, py, idx = data.probe_set("mnist", "test", 50)   # 50 per class, same on every machine
    x, y = data.load_task("fashion_mnist", "train", classes=[0, 5, 9], per_class=100, seed=3)

Array convention and data-dir rules: see `registry` (data dir: the argument, else
$JTRANSFER_DATA_DIR). Offline datasets: `images` (mnist, fashion_mnist, kmnist [test only],
cifar10 [partial: 4,000 / 1,000], usps [test only]); thesis tasks: `derived`; tfds datasets
(TF-free): `tfds_source`.
"""

from jtransfer.data import (  # noqa: F401 (registers)
  audio_tasks,
  derived,
  fsdd,
  images,
  tfds_source,
  variants,
)
from jtransfer.data.normalization import denormalize, mean_std, normalize
from jtransfer.data.probe import probe_indices, probe_set
from jtransfer.data.readers import clear_cache
from jtransfer.data.registry import (
  DATA_DIR_ENV,
  DatasetSpec,
  get,
  load,
  names,
  register,
  register_lazy,
  resolve_data_dir,
)
from jtransfer.data.subsets import load_task, sample_keys, subset, subset_indices, task_spec
from jtransfer.data.tfds_source import source

__all__ = (
  "DATA_DIR_ENV",
  "DatasetSpec",
  "clear_cache",
  "denormalize",
  "get",
  "load",
  "load_task",
  "mean_std",
  "names",
  "normalize",
  "probe_indices",
  "probe_set",
  "register",
  "register_lazy",
  "resolve_data_dir",
  "sample_keys",
  "source",
  "subset",
  "subset_indices",
  "task_spec",
)
