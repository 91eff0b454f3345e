r"""The thesis VGG study: public pre-trained VGG-16s -> Custom3D, Malaria, Oxford-IIIT Pet.

Full study (a GPU job; you need the weights and the Custom3D images):

  # 1. import each VGG-16 (torchvision key names; .safetensors needs no torch, .pth needs torch)
  python launch/import_zoo.py --config configs/thesis_vgg.py --workdir runs/thesis_vgg
  # 2. probe + score every tap, fine-tune, evaluate
  python launch/sweep.py --config configs/thesis_vgg.py --workdir runs/thesis_vgg \
      --stages score,finetune,evaluate

Tiny variant (offline; what tests/thesis_vgg_test.py runs): VGG-16-shaped weights in
torchvision's key layout at 1/16 width and 64x64 inputs, and a synthetic image folder, both
written by the first command:

  python scripts/make_vgg_tiny_fixtures.py
  python launch/import_zoo.py --config configs/thesis_vgg.py:tiny --workdir runs/thesis_vgg_tiny
  python launch/sweep.py --config configs/thesis_vgg.py:tiny --workdir runs/thesis_vgg_tiny \
      --stages score,finetune,evaluate

Weights (`weights_dir`, default `weights/`; file names in `SOURCES`), as in thesis section 2.3:
- ImageNet: torchvision's `vgg16-397923af.pth` (pass the .pth with torch installed, or convert
  once: `save_file(torch.load(p), "vgg16_imagenet.safetensors")` from `safetensors.torch`);
- Places365 (Zhou et al. 2017), Stanford Cars, VGG-Face (Parkhi et al. 2015): their VGG-16
  weights converted to torchvision's key names (`features.<i>`, `classifier.0/3/6`);
- not covered: CamVid (a SegNet encoder without a classifier) and the thesis' CIFAR-10 VGG (32x32
  inputs): their layouts differ from torchvision's VGG-16.
Custom3D (Ansuini et al. 2019): one folder per class under `custom3d_dir` (40 classes; 80/20
class-stratified split). Malaria and Oxford-IIIT Pet come from tfds (`tfds.data_source` downloads
and prepares them once; then offline), resized as the thesis does (shorter side 256, centre 224).

Protocol (thesis 2.3.2-2.3.3): probes of 30 images per class (the thesis uses 50 for the
two-class Malaria: score it separately with `probe_per_class=50` if you need that), every tap
(pool1..pool5, fc6, fc7, logits), every score; fine-tuning of the transferred feature extractor
with a new classifier, "last_block" (all transferred convolutions frozen but the last, the
thesis' setting) and "full"; SGD momentum 0.9, lr 0.01 x 0.1 every 20 epochs, 100 epochs; the
untrained-VGG and scratch baselines. The thesis' batch sizes differ per target (12 Custom3D, 58
Pet, 22 Malaria); one sweep uses one (22): run `launch/finetune.py` per target to match them.
"""

import ml_collections

SOURCES = (  # (source name, architecture, weights file under weights_dir)
  ("imagenet", "vgg16", "vgg16_imagenet.safetensors"),
  ("places365", "vgg16", "vgg16_places365.safetensors"),
  ("stanford_cars", "vgg16", "vgg16_stanford_cars.safetensors"),
  ("vgg_face", "vgg16", "vgg16_vgg_face.safetensors"),
)
TARGETS = ("custom3d", "malaria", "oxford_iiit_pet")
TINY_SOURCES = (
  ("tiny_a", "vgg16", "tiny_a.safetensors"),
  ("tiny_b", "vgg16", "tiny_b.safetensors"),
)


def _set(section: ml_collections.ConfigDict, **fields) -> None:
  for name, value in fields.items():
    section[name] = value


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in ("full", "tiny"):
    raise ValueError(f"unknown variant {arg!r}; valid: full, tiny")
  c = ml_collections.ConfigDict()
  c.cpu_devices = 0
  weights_dir = "weights" if arg == "full" else "runs/thesis_vgg_tiny_weights"
  sources = SOURCES if arg == "full" else TINY_SOURCES
  # launch/import_zoo.py --config reads these; the sweep then starts at its score stage.
  c.imports = [{"source": s, "arch": a, "weights": f"{weights_dir}/{f}"} for s, a, f in sources]
  c.image_folders = [{"name": "custom3d", "root": "data/custom3d", "size": 224}]
  c.model_modules = []
  c.sources = []  # nothing is pre-trained here: the zoo is imported
  c.pretrain = {}
  c.score = dict(targets=list(TARGETS), probe_per_class=30, heldout_probe=False)
  c.finetune = dict(
    targets=list(TARGETS),
    modes=["last_block", "full"],
    ft_seeds=[0],
    duration={"epochs": 100},
    batch_size=22,
    optimizer="sgd",
    optimizer_kwargs={"learning_rate": 0.01, "momentum": 0.9, "decay_every_epochs": 20},
  )
  c.evaluate = dict(keep_seeds=False, n_boot=1000, focus_layer="pool5")
  c.studies = ("thesis",)

  if arg == "tiny":
    c.image_folders = [
      {"name": "custom3d_tiny", "root": "runs/thesis_vgg_tiny_images", "size": 64, "resize": 73}
    ]
    _set(c.score, targets=["custom3d_tiny"], probe_per_class=4)
    _set(
      c.finetune,
      targets=["custom3d_tiny"],
      duration={"steps": 6},
      batch_size=8,
      optimizer_kwargs={"learning_rate": 0.01, "momentum": 0.9},
    )
    _set(c.evaluate, n_boot=20, focus_layer="pool5")
  return c
