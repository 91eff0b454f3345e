"""Writes the fixtures `configs/thesis_vgg.py:tiny` reads, so its documented commands run offline.

  python scripts/make_vgg_tiny_fixtures.py            # into ./runs (run from the checkout)
  python scripts/make_vgg_tiny_fixtures.py --root DIR

- `runs/thesis_vgg_tiny_weights/tiny_{a,b}.safetensors`: VGG-16s in torchvision's key names and
  layout (`features.<i>`, `classifier.0/3/6`; OIHW kernels) at 1/16 width, fc6 on a 2x2 map
  (64x64 inputs), 16 hidden units, 7 source classes; He-initialised random weights (seeds 10, 11).
- `runs/thesis_vgg_tiny_images/class{0,1,2}/*.png`: 3 classes x 10 noisy colour patches, 80x96.
Existing files are overwritten with the same bytes (deterministic).
"""

import argparse
import pathlib

import numpy as np
from PIL import Image
from safetensors.numpy import save_file

VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
COLOURS = ((220, 40, 40), (40, 220, 40), (40, 40, 220))


def tiny_vgg16(rng, *, width=1 / 16, side=2, hidden=16, classes=7) -> dict[str, np.ndarray]:
  """torchvision vgg16 keys; feature index i counts conv, ReLU and pool modules as torch does."""
  sd, i, cin = {}, 0, 3
  for block in VGG16:
    for channels in block:
      c = round(channels * width)
      fan = cin * 9
      sd[f"features.{i}.weight"] = (rng.standard_normal((c, cin, 3, 3)) * np.sqrt(2 / fan)).astype(
        np.float32
      )
      sd[f"features.{i}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
      i, cin = i + 2, c  # the conv, then its ReLU
    i += 1  # the block's max-pool
  dims = [(hidden, cin * side * side), (hidden, hidden), (classes, hidden)]
  for name, (out, fan) in zip(("classifier.0", "classifier.3", "classifier.6"), dims, strict=True):
    sd[f"{name}.weight"] = (rng.standard_normal((out, fan)) * np.sqrt(2 / fan)).astype(np.float32)
    sd[f"{name}.bias"] = rng.normal(0, 0.1, out).astype(np.float32)
  return sd


def write(root: pathlib.Path) -> list[pathlib.Path]:
  weights = root / "thesis_vgg_tiny_weights"
  weights.mkdir(parents=True, exist_ok=True)
  out = []
  for seed, name in ((10, "tiny_a"), (11, "tiny_b")):
    path = weights / f"{name}.safetensors"
    save_file(tiny_vgg16(np.random.default_rng(seed)), str(path))
    out.append(path)
  rng = np.random.default_rng(0)
  images = root / "thesis_vgg_tiny_images"
  for k, colour in enumerate(COLOURS):
    (images / f"class{k}").mkdir(parents=True, exist_ok=True)
    for j in range(10):
      a = np.clip(rng.normal(colour, 50, (80, 96, 3)), 0, 255).astype(np.uint8)
      Image.fromarray(a).save(images / f"class{k}" / f"{j}.png")
  return [*out, images]


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--root", default="runs", help="folder that gets the two fixture folders")
  for path in write(pathlib.Path(p.parse_args().root)):
    print(path)


if __name__ == "__main__":
  main()
