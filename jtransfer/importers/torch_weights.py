"""PyTorch weights (torchvision / timm key names) -> jtransfer params, no torch needed.

  sd = read_state_dict("vgg16.safetensors")          # {key: NumPy array}; .pth needs torch
  conv = convert(sd, "vgg16")                        # Converted(params, rest, model_kwargs, ...)

Architectures: `vgg16`, `vgg16_bn`, `vgg19` (torchvision `features.<i>` / `classifier.<i>`, or
timm's `pre_logits.fc1` / `pre_logits.fc2` / `head.fc`) and `resnet18` (torchvision and timm
share its names: `conv1`, `bn1`, `layer<s>.<b>.conv1` ..., `downsample.0/1`, `fc`).

Every layout change is explicit:
- conv kernels OIHW -> HWIO (`_conv`); Linear weights [out, in] -> [in, out] (`_linear`);
- VGG's first classifier Linear reads the last feature map flattened in NCHW order (torch);
  the Flax VGG flattens NHWC, so its rows are permuted (`_fc6`); timm's 7x7 conv `fc1` is the
  same matrix once reshaped;
- batch norm: weight -> scale, bias -> bias, running_mean / running_var -> the model's
  non-parameter state (`rest`: mean, var); `num_batches_tracked` is dropped. torchvision's eps
  is 1e-5, the Flax models' too; a state dict does not record eps, so weights trained with
  another eps need a model built with it.

The model hyperparameters are read off the shapes (channel width, classifier width, number of
classes, VGG input size from fc6's fan-in, ResNet stem and blocks per stage), then checked
against the Flax model built with them: a missing, unexpected or misshapen key is one error
naming it. torchvision's VGG applies `AdaptiveAvgPool2d(7)` before the classifier, the identity
at 224x224 inputs (7x7 maps), which is the size the Flax VGG is then built for.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jtransfer import errors
from jtransfer.models import functional, vgg

if TYPE_CHECKING:  # the zoo (and orbax) only load when a file is imported into one
  from jtransfer.store import zoo

ARCHS = ("vgg16", "vgg16_bn", "vgg19", "resnet18")
_DROP = ("num_batches_tracked",)
_PREFIXES = ("module.", "model.")


@dataclasses.dataclass
class Converted:
  """Flax-layout trees plus what is needed to rebuild the model and trace every value."""

  arch: str
  params: dict[str, Any]  # {"backbone": ..., "head": ...}
  rest: dict[str, Any]  # batch-norm statistics ({} without batch norm)
  model_kwargs: dict[str, Any]
  num_classes: int
  key_map: dict[str, str]  # "backbone/conv1_1/conv/kernel" -> "features.0.weight"


# -- reading ---------------------------------------------------------------------------------


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """{key: float32 NumPy array} from `.safetensors` (NumPy API) or `.pth` / `.pt` (needs torch).

  Refused with a `UserError` naming the file (and the tensor): a file that does not parse
  (truncated, not a weights file), a tensor that is not floating point (integer or bool weights
  are not a model's; `num_batches_tracked` counters are dropped), a tensor with NaN or Inf.
  Floating tensors of any width (float16, bfloat16, float64) are cast to float32.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"no weights file at {path}")
  if path.suffix == ".safetensors":
    from safetensors.numpy import load_file

    try:
      sd = load_file(str(path))
    except Exception as e:  # SafetensorError, or a header that is not JSON: not our file
      raise errors.UserError(
        f"{path}: cannot be read as .safetensors ({errors.one_line(e)}); is it truncated, or "
        "another format?"
      ) from e
  elif path.suffix in (".pth", ".pt", ".bin"):
    try:
      import torch
    except ImportError:
      raise errors.UserError(
        f"{path.name}: reading a .pth state dict needs torch; install it, or convert the file "
        "to .safetensors (safetensors.torch.save_file) and import that"
      ) from None
    try:
      obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated zip, pickled code, not a torch file at all
      raise errors.UserError(
        f"{path}: cannot be read as a torch state dict ({errors.one_line(e)})"
      ) from e
    for wrapper in ("state_dict", "model"):  # common checkpoint wrappers
      if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
        obj = obj[wrapper]
    if not isinstance(obj, Mapping):
      raise errors.UserError(f"{path.name} holds a {type(obj).__name__}, not a state dict")
    sd = {}
    for k, v in obj.items():
      if hasattr(v, "detach"):
        v = v.detach()
        sd[k] = v.float().numpy() if v.is_floating_point() else v.numpy()
  else:
    raise errors.UserError(f"{path.name}: unknown weights format; use .safetensors or .pth")
  return strip_prefixes(checked_weights(sd, path))


def checked_weights(sd: Mapping[str, Any], path) -> dict[str, np.ndarray]:
  """The state dict as float32 arrays, refusing what cannot be a model's weight (see
  `read_state_dict`)."""
  out = {}
  for key, value in sd.items():
    a = np.asarray(value)
    if key.rsplit(".", 1)[-1] in _DROP:
      continue
    if not np.issubdtype(a.dtype, np.floating) and a.dtype.name != "bfloat16":
      raise errors.UserError(
        f"{path}: tensor {key!r} has dtype {a.dtype}; weights must be floating point (cast "
        "them, or drop the tensor, before importing)"
      )
    a = a.astype(np.float32)
    bad = a.size - int(np.isfinite(a).sum())
    if bad:
      raise errors.UserError(
        f"{path}: tensor {key!r} {a.shape} has {bad} non-finite values (NaN or Inf): not "
        "usable weights"
      )
    out[key] = a
  return out


def strip_prefixes(sd: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Drops a wrapper prefix every key shares (DataParallel's "module.", "model.")."""
  sd = dict(sd)
  for prefix in _PREFIXES:
    if sd and all(k.startswith(prefix) for k in sd):
      sd = {k[len(prefix) :]: v for k, v in sd.items()}
  return sd


# -- layout changes --------------------------------------------------------------------------


def _conv(w: np.ndarray) -> np.ndarray:
  """OIHW (torch Conv2d.weight) -> HWIO (Flax Conv kernel)."""
  return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def _linear(w: np.ndarray) -> np.ndarray:
  """[out, in] (torch Linear.weight) -> [in, out] (Flax Linear kernel)."""
  return np.ascontiguousarray(w.T)


def _fc6(w: np.ndarray, channels: int) -> tuple[np.ndarray, int]:
  """torch fc6 [out, C*h*w] (NCHW flatten) -> Flax [h*w*C, out] (NHWC flatten); also h.

  A timm `pre_logits.fc1` conv [out, C, h, w] is the same matrix (its window covers the map).
  """
  out = w.shape[0]
  if w.ndim == 4:
    w = w.reshape(out, -1)
  side = math.isqrt(w.shape[1] // channels)
  if side * side * channels != w.shape[1]:
    raise errors.UserError(
      f"the first classifier layer takes {w.shape[1]} inputs, not channels ({channels}) x a "
      "square map"
    )
  w = w.reshape(out, channels, side, side).transpose(2, 3, 1, 0).reshape(-1, out)
  return np.ascontiguousarray(w), side


def _bn(sd, key: str, used: dict, where: str) -> tuple[dict, dict]:
  used.update({f"{where}/scale": f"{key}.weight", f"{where}/bias": f"{key}.bias"})
  used.update({f"{where}/mean": f"{key}.running_mean", f"{where}/var": f"{key}.running_var"})
  params = {"scale": _get(sd, f"{key}.weight"), "bias": _get(sd, f"{key}.bias")}
  rest = {"mean": _get(sd, f"{key}.running_mean"), "var": _get(sd, f"{key}.running_var")}
  return params, rest


def _get(sd, key: str) -> np.ndarray:
  if key not in sd:
    raise errors.UserError(f"state dict has no key {key!r} (has e.g. {sorted(sd)[:6]})")
  return np.asarray(sd[key], np.float32)


def _set(tree: dict, path: str, value) -> None:
  *parents, leaf = path.split("/")
  for p in parents:
    tree = tree.setdefault(p, {})
  tree[leaf] = value


# -- VGG -------------------------------------------------------------------------------------


def _vgg(sd, arch: str) -> Converted:
  batch_norm = arch.endswith("_bn")
  blocks = vgg.CONFIGS[arch.removesuffix("_bn")]
  params, rest, used = {}, {}, {}
  i = 0  # torchvision's nn.Sequential index: conv, [bn], relu per conv; one max-pool per block
  last = None
  for b, block in enumerate(blocks, start=1):
    for j in range(1, len(block) + 1):
      name = f"backbone/conv{b}_{j}"
      w = _get(sd, f"features.{i}.weight")
      _set(params, f"{name}/conv/kernel", _conv(w))
      _set(params, f"{name}/conv/bias", _get(sd, f"features.{i}.bias"))
      used.update({f"{name}/conv/kernel": f"features.{i}.weight"})
      used.update({f"{name}/conv/bias": f"features.{i}.bias"})
      last = w.shape[0]
      i += 1
      if batch_norm:
        p, r = _bn(sd, f"features.{i}", used, f"{name}/bn")
        _set(params, f"{name}/bn", p)
        _set(rest, f"{name}/bn", r)
        i += 1
      i += 1  # ReLU
    i += 1  # MaxPool
  if "classifier.0.weight" in sd:  # torchvision
    names = {"fc6": "classifier.0", "fc7": "classifier.3", "logits": "classifier.6"}
  else:  # timm: 7x7 / 1x1 convs in pre_logits, then head.fc
    names = {"fc6": "pre_logits.fc1", "fc7": "pre_logits.fc2", "logits": "head.fc"}
  fc6, side = _fc6(_get(sd, f"{names['fc6']}.weight"), last)
  fc7 = _get(sd, f"{names['fc7']}.weight")
  fc7 = fc7.reshape(fc7.shape[0], -1)  # timm's 1x1 conv
  logits = _get(sd, f"{names['logits']}.weight")
  for layer, w in (("fc6", fc6), ("fc7", _linear(fc7)), ("logits", _linear(logits))):
    _set(params, f"head/{layer}/kernel", w)
    _set(params, f"head/{layer}/bias", _get(sd, f"{names[layer]}.bias"))
    used[f"head/{layer}/kernel"] = f"{names[layer]}.weight"
    used[f"head/{layer}/bias"] = f"{names[layer]}.bias"
  first = params["backbone"]["conv1_1"]["conv"]["kernel"]
  kwargs = {
    "image_size": 32 * side,
    "in_channels": int(first.shape[2]),
    "width": first.shape[3] / 64,
    "classifier_width": int(fc6.shape[1]),
  }
  return Converted(arch, params, rest, kwargs, int(logits.shape[0]), used)


# -- ResNet ----------------------------------------------------------------------------------


def _resnet(sd, arch: str) -> Converted:
  params, rest, used = {}, {}, {}

  def conv(key, where):
    _set(params, f"{where}/kernel", _conv(_get(sd, f"{key}.weight")))
    used[f"{where}/kernel"] = f"{key}.weight"

  def bn(key, where):
    p, r = _bn(sd, key, used, where)
    _set(params, where, p)
    _set(rest, where, r)

  conv("conv1", "backbone/stem/conv")
  bn("bn1", "backbone/stem/bn")
  blocks = []
  for s in range(1, 5):
    n = 0
    while f"layer{s}.{n}.conv1.weight" in sd:
      where = f"backbone/stage{s}_block{n + 1}"
      for k in ("conv1", "conv2"):
        conv(f"layer{s}.{n}.{k}", f"{where}/{k}")
        bn(f"layer{s}.{n}.bn{k[-1]}", f"{where}/bn{k[-1]}")
      if f"layer{s}.{n}.downsample.0.weight" in sd:
        conv(f"layer{s}.{n}.downsample.0", f"{where}/down_conv")
        bn(f"layer{s}.{n}.downsample.1", f"{where}/down_bn")
      n += 1
    if n == 0:
      raise errors.UserError(
        f"state dict has no key 'layer{s}.0.conv1.weight': not a ResNet-18 layout"
      )
    blocks.append(n)
  fc = _get(sd, "fc.weight")
  _set(params, "head/logits/kernel", _linear(fc))
  _set(params, "head/logits/bias", _get(sd, "fc.bias"))
  used.update({"head/logits/kernel": "fc.weight", "head/logits/bias": "fc.bias"})
  stem = params["backbone"]["stem"]["conv"]["kernel"]
  kwargs = {
    "image_size": 224 if stem.shape[0] == 7 else 32,
    "in_channels": int(stem.shape[2]),
    "width": stem.shape[3] / 64,
    "blocks": tuple(blocks),
    "stem": "imagenet" if stem.shape[0] == 7 else "cifar",
  }
  return Converted(arch, params, rest, kwargs, int(fc.shape[0]), used)


# -- entry point -----------------------------------------------------------------------------


def convert(sd: Mapping[str, Any], arch: str) -> Converted:
  """The state dict `sd` of a torchvision / timm `arch` in jtransfer's layout (checked)."""
  if arch not in ARCHS:
    raise errors.UserError(f"unknown architecture {arch!r} for PyTorch weights; valid: {ARCHS}")
  sd = strip_prefixes(sd)
  out = _vgg(sd, arch) if arch.startswith("vgg") else _resnet(sd, arch)
  unused = sorted(k for k in set(sd) - set(out.key_map.values()) if not k.endswith(_DROP))
  if unused:
    raise errors.UserError(
      f"state dict keys not used by {arch} (another architecture?): {unused[:6]}"
      + (f" and {len(unused) - 6} more" if len(unused) > 6 else "")
    )
  _check_against_model(out)
  return out


def _check_against_model(c: Converted) -> None:
  """Builds the Flax model from the inferred hyperparameters; every shape must agree."""
  _, want_p, want_r = functional.abstract_init(c.arch, num_classes=c.num_classes, **c.model_kwargs)
  for what, got, want in (("params", c.params, want_p), ("batch-norm state", c.rest, want_r)):
    g = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_leaves_with_path(got)}
    w = {
      jax.tree_util.keystr(k): tuple(v.shape) for k, v in jax.tree_util.tree_leaves_with_path(want)
    }
    if g != w:
      diff = sorted(set(g.items()) ^ set(w.items()))[:4]
      raise errors.UserError(
        f"converted {what} do not fit {c.arch} with {c.model_kwargs} (first differences: "
        f"{diff}): the weights are not a torchvision/timm {c.arch}"
      )


def replace_head(c: Converted, num_classes: int, *, seed: int = 0) -> Converted:
  """`c` with the head of a freshly initialised `arch` model (`num_classes` outputs)."""
  _, fresh, _ = functional.init(c.arch, num_classes=num_classes, seed=seed, **c.model_kwargs)
  params = {"backbone": c.params["backbone"], "head": jax.tree.map(np.asarray, fresh["head"])}
  key_map = {k: v for k, v in c.key_map.items() if not k.startswith("head/")}
  return dataclasses.replace(c, params=params, num_classes=num_classes, key_map=key_map)


# -- into a zoo ------------------------------------------------------------------------------


def import_file(
  workdir: str | os.PathLike,
  path: str | os.PathLike,
  *,
  arch: str,
  source: str,
  seed: int = 0,
  step: int = 0,
  head: str = "keep",
  num_classes: int | None = None,
) -> zoo.Entry:
  """Reads, converts and writes one weights file as a zoo entry (`zoo_entry.write_imported`);
  returns the entry.

  head="keep" (default): the file's classifier, source classes and all (LEEP / NCE read it, the
  fc6 / fc7 probes need it). head="new": a freshly initialised head (the architecture's own
  init, `jax.random.key(seed)`) for `num_classes` classes (default: the file's), e.g. for weights
  whose classifier is missing or meaningless; the fine-tune job gives every transferred
  backbone a new head in any case.
  """
  from jtransfer.importers import zoo_entry

  if head not in ("keep", "new"):
    raise errors.UserError(f"head must be 'keep' or 'new', got {head!r}")
  sd = read_state_dict(path)
  c = convert(sd, arch)
  if head == "new":
    c = replace_head(c, num_classes or c.num_classes, seed=seed)
  elif num_classes is not None and num_classes != c.num_classes:
    raise errors.UserError(
      f"{pathlib.Path(path).name} has {c.num_classes} classes, not {num_classes}; pass "
      "head='new' to replace its head"
    )
  provenance = {
    "format": "torch",
    "file": str(pathlib.Path(path).absolute()),
    "file_sha256": zoo_entry.file_hash(path),
    "original_keys": c.key_map,
    "head": head,
  }
  return zoo_entry.write_imported(
    workdir,
    source=source,
    arch=arch,
    params=c.params,
    rest=c.rest,
    model_kwargs=c.model_kwargs,
    num_classes=c.num_classes,
    provenance=provenance,
    seed=seed,
    step=step,
  )
