r"""PyTorch -> jtransfer weight import, checked against PyTorch's own logits.

  bash scripts/setup_torch_compare.sh            # once: .venv-torch with CPU torch + safetensors
  python benchmarks/torch_compat.py --torch_python .venv-torch/bin/python

Two halves, because torch (Python 3.11 venv) and jax (3.12) live in different venvs:
- `--side torch` (run by the other half in the torch venv): builds VGG-16, VGG-16-BN and
  ResNet-18 in plain `torch.nn` with torchvision's module names (torchvision's own wheel does not
  load its compiled ops against this torch; the names, hence the state-dict keys, are the same),
  random weights (torchvision's init, plus random batch-norm statistics), eval mode; writes each
  state dict as .safetensors, the images and torch's float32 logits.
- default: runs that, imports every state dict with `jtransfer.importers.torch_weights`, runs the
  Flax model on the same images (NCHW -> NHWC) and prints one JSON line per architecture with
  the max relative logit difference max|jax - torch| / max|torch|, also after subtracting each
  side's mean over the images (so that biases alone cannot make the logits agree).
"""

import argparse
import json
import pathlib
import subprocess
import tempfile

import numpy as np

ARCHS = ("vgg16", "vgg16_bn", "resnet18")


# -- the torch side (imports torch only here) -------------------------------------------------


def _torch_models():
  import torch
  from torch import nn

  def vgg(bn: bool):
    layers, cin = [], 3
    for block in ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3):
      for c in block:
        layers += [nn.Conv2d(cin, c, 3, padding=1)]
        layers += [nn.BatchNorm2d(c)] if bn else []
        layers += [nn.ReLU(inplace=True)]
        cin = c
      layers.append(nn.MaxPool2d(2, 2))
    m = nn.Module()
    m.features = nn.Sequential(*layers)
    m.avgpool = nn.AdaptiveAvgPool2d((7, 7))
    m.classifier = nn.Sequential(
      nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout(),
      nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000),
    )  # fmt: skip
    m.forward = lambda x: m.classifier(torch.flatten(m.avgpool(m.features(x)), 1))
    return m

  class Block(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(cout)
      self.relu = nn.ReLU(inplace=True)
      self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(cout)
      self.downsample = None
      if stride != 1 or cin != cout:
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                        nn.BatchNorm2d(cout))  # fmt: skip

    def forward(self, x):
      y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
      return self.relu(y + (x if self.downsample is None else self.downsample(x)))

  class ResNet18(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
      self.bn1 = nn.BatchNorm2d(64)
      self.relu = nn.ReLU(inplace=True)
      self.maxpool = nn.MaxPool2d(3, 2, 1)
      cin = 64
      for s, c in enumerate((64, 128, 256, 512), start=1):
        stride = 1 if s == 1 else 2
        setattr(self, f"layer{s}", nn.Sequential(Block(cin, c, stride), Block(c, c, 1)))
        cin = c
      self.avgpool = nn.AdaptiveAvgPool2d(1)
      self.fc = nn.Linear(512, 1000)

    def forward(self, x):
      x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
      for s in range(1, 5):
        x = getattr(self, f"layer{s}")(x)
      return self.fc(torch.flatten(self.avgpool(x), 1))

  return {"vgg16": lambda: vgg(False), "vgg16_bn": lambda: vgg(True), "resnet18": ResNet18}


def torch_side(out: pathlib.Path, images: int, seed: int) -> None:
  import torch
  from safetensors.torch import save_file
  from torch import nn

  torch.manual_seed(seed)
  x = torch.rand(images, 3, 224, 224) * 2 - 1
  np.save(out / "images.npy", x.numpy())
  for arch, make in _torch_models().items():
    model = make()
    for m in model.modules():  # torchvision's init, then random BN statistics
      if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
          nn.init.normal_(m.bias, 0, 0.1)
      elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0, 0.01)
        nn.init.normal_(m.bias, 0, 0.1)
      elif isinstance(m, nn.BatchNorm2d):
        nn.init.uniform_(m.weight, 0.5, 1.5)
        nn.init.normal_(m.bias, 0, 0.1)
        m.running_mean.normal_(0, 0.2)
        m.running_var.uniform_(0.5, 2.0)
    model.eval()
    with torch.no_grad():
      logits = model(x)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, out / f"{arch}.safetensors")
    np.save(out / f"{arch}_logits.npy", logits.numpy())
  print(json.dumps({"torch": torch.__version__, "archs": list(_torch_models())}))


# -- the jax side ---------------------------------------------------------------------------


def _rel(got, want) -> float:
  return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def jax_side(torch_python: str, images: int, seed: int) -> list[dict]:
  from jtransfer.importers import torch_weights
  from jtransfer.models import functional

  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    cmd = [torch_python, __file__, "--side", "torch", "--out", str(tmp),
           "--images", str(images), "--seed", str(seed)]  # fmt: skip
    info = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    x = np.load(tmp / "images.npy").transpose(0, 2, 3, 1)
    rows = []
    for arch in ARCHS:
      c = torch_weights.convert(torch_weights.read_state_dict(tmp / f"{arch}.safetensors"), arch)
      graphdef, _, _ = functional.abstract_init(arch, num_classes=c.num_classes, **c.model_kwargs)
      got, _ = functional.apply(graphdef, c.params, c.rest, x)
      want = np.load(tmp / f"{arch}_logits.npy")
      got = np.asarray(got)
      rows.append({
        "arch": arch,
        "torch": info["torch"],
        "images": images,
        "max_rel_diff": _rel(got, want),
        "same_argmax": float(np.mean(got.argmax(-1) == want.argmax(-1))),
        # How much the logits depend on the image (not only on biases): the same measure on the
        # difference from the mean over images.
        "max_rel_diff_centred": _rel(got - got.mean(0), want - want.mean(0)),
      })  # fmt: skip
  return rows


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--side", choices=("jax", "torch"), default="jax")
  p.add_argument("--torch_python", default=".venv-torch/bin/python")
  p.add_argument("--out", type=pathlib.Path)
  p.add_argument("--images", type=int, default=4)
  p.add_argument("--seed", type=int, default=0)
  a = p.parse_args()
  if a.side == "torch":
    torch_side(a.out, a.images, a.seed)
  else:
    for row in jax_side(a.torch_python, a.images, a.seed):
      print(json.dumps(row), flush=True)


if __name__ == "__main__":
  main()
