r"""Time to import one real-size VGG-16 (138 M parameters, torchvision layout) and score it.

  python benchmarks/import_score_vgg16.py --workdir /tmp/vgg16_bench [--layers pool5,fc7]

Writes a random VGG-16 state dict in torchvision's keys and shapes (.safetensors, NumPy only)
and a synthetic 10-class image folder (63 images per class, 256x320 PNG), then times
1. import: read the file, convert (OIHW -> HWIO, fc6 row permutation), save the zoo entry;
2. score: `score_job.run` on a 500-image probe (50 per class) at 224x224, every requested tap
   (default: all eight), every score; the image folder's decode cache is filled beforehand (it
   is a one-off cost, reported separately).
Prints one JSON line. Make no comparisons across machines: the numbers are this CPU's.
"""

import argparse
import json
import pathlib
import shutil
import time

import numpy as np

VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def torchvision_vgg16(rng) -> dict:
  """Random VGG-16 weights with torchvision's keys and shapes (138,357,544 numbers)."""
  sd, i, cin = {}, 0, 3
  for block in VGG16:
    for c in block:
      std = np.sqrt(2.0 / (c * 9))  # kaiming fan_out
      sd[f"features.{i}.weight"] = rng.standard_normal((c, cin, 3, 3), np.float32) * std
      sd[f"features.{i}.bias"] = np.zeros(c, np.float32)
      i, cin = i + 2, c
    i += 1
  for k, (fout, fin) in zip((0, 3, 6), ((4096, 25088), (4096, 4096), (1000, 4096)), strict=True):
    sd[f"classifier.{k}.weight"] = rng.standard_normal((fout, fin), np.float32) * 0.01
    sd[f"classifier.{k}.bias"] = np.zeros(fout, np.float32)
  return sd


def image_folder(root: pathlib.Path, rng, classes=10, per_class=63) -> None:
  from PIL import Image

  for c in range(classes):
    d = root / f"class{c:02d}"
    d.mkdir(parents=True, exist_ok=True)
    colour = rng.uniform(0, 255, 3)
    for j in range(per_class):
      if not (d / f"{j}.png").exists():
        a = np.clip(rng.normal(colour, 60, (256, 320, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(d / f"{j}.png")


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", type=pathlib.Path, required=True)
  p.add_argument("--layers", default="", help="comma-separated taps (default: all)")
  p.add_argument("--scores", default="", help="comma-separated scores (default: all)")
  a = p.parse_args()
  from safetensors.numpy import save_file

  from jtransfer import data
  from jtransfer.data import image_folder as folders
  from jtransfer.importers import torch_weights
  from jtransfer.jobs import context as job
  from jtransfer.jobs import score as score_job

  rng = np.random.default_rng(0)
  a.workdir.mkdir(parents=True, exist_ok=True)
  weights = a.workdir / "vgg16_random.safetensors"
  if not weights.exists():
    save_file(torchvision_vgg16(rng), str(weights))
  image_folder(a.workdir / "images", rng)
  folders.register("bench_images", a.workdir / "images", cache=a.workdir / "cache")
  t = time.perf_counter()
  data.load("bench_images", "train")
  decode_s = time.perf_counter() - t

  zoo = a.workdir / "zoo_run"
  shutil.rmtree(zoo, ignore_errors=True)  # time a fresh import and score every run
  t = time.perf_counter()
  torch_weights.import_file(zoo, weights, arch="vgg16", source="random_imagenet")
  import_s = time.perf_counter() - t
  t = time.perf_counter()
  config = score_job.ScoreConfig(
    target="bench_images",
    probe_per_class=50,
    layers=a.layers.split(",") if a.layers else None,
    scores=a.scores.split(",") if a.scores else None,
  )
  summary = score_job.run(config, job.Runtime(zoo, show_progress=False))
  score_s = time.perf_counter() - t
  print(json.dumps({
    "params": 138_357_544,
    "probe": 500,
    "layers": a.layers or "all",
    "decode_cache_s": round(decode_s, 1),
    "import_s": round(import_s, 1),
    "score_s": round(score_s, 1),
    "rows": summary["rows"],
  }))  # fmt: skip


if __name__ == "__main__":
  main()
