"""PyTorch (torchvision / timm layout) weights -> jtransfer: logits against a float64 NumPy
forward pass written here in torch's own layout (NCHW activations, OIHW kernels, NCHW flatten)."""

import hashlib
import shutil

import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

from jtransfer.importers import torch_weights
from jtransfer.jobs import migrate
from jtransfer.models import functional
from jtransfer.store import checkpointing, results, zoo

VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
VGG19 = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)


# -- torch-layout state dicts, drawn with NumPy -------------------------------------------


def _conv_w(rng, cout, cin, k):
  return (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)


def _bn_sd(rng, prefix, c):
  return {
    f"{prefix}.weight": rng.uniform(0.5, 1.5, c).astype(np.float32),
    f"{prefix}.bias": rng.normal(0, 0.1, c).astype(np.float32),
    f"{prefix}.running_mean": rng.normal(0, 0.2, c).astype(np.float32),
    f"{prefix}.running_var": rng.uniform(0.5, 2.0, c).astype(np.float32),
    f"{prefix}.num_batches_tracked": np.array(7, np.int64),
  }


def vgg_state_dict(
  rng, *, bn=False, width=1 / 16, side=2, hidden=16, classes=5, timm=False, blocks=VGG16
):
  """torchvision `vgg16(_bn)` / `vgg19` keys and layout (channels x `width`, fc6 on side^2)."""
  sd, i, cin = {}, 0, 3
  for block in blocks:
    for c in block:
      c = round(c * width)
      sd[f"features.{i}.weight"] = _conv_w(rng, c, cin, 3)
      sd[f"features.{i}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
      i += 1
      if bn:
        sd.update(_bn_sd(rng, f"features.{i}", c))
        i += 1
      i += 1
      cin = c
    i += 1
  fan = cin * side * side
  fc6 = (rng.standard_normal((hidden, fan)) * np.sqrt(2 / fan)).astype(np.float32)
  fc7 = (rng.standard_normal((hidden, hidden)) * np.sqrt(2 / hidden)).astype(np.float32)
  fc8 = (rng.standard_normal((classes, hidden)) * np.sqrt(1 / hidden)).astype(np.float32)
  names = ("pre_logits.fc1", "pre_logits.fc2", "head.fc") if timm else (
    "classifier.0", "classifier.3", "classifier.6")  # fmt: skip
  if timm:  # timm's ConvMlp: fc1 a side x side conv, fc2 a 1x1 conv
    fc6, fc7 = fc6.reshape(hidden, cin, side, side), fc7.reshape(hidden, hidden, 1, 1)
  for name, w in zip(names, (fc6, fc7, fc8), strict=True):
    sd[f"{name}.weight"] = w
    sd[f"{name}.bias"] = rng.normal(0, 0.1, w.shape[0]).astype(np.float32)
  return sd


def resnet_state_dict(rng, *, width=1 / 16, classes=5):
  """torchvision `resnet18` keys and layout, channels scaled by `width`."""
  w = [round(c * width) for c in (64, 128, 256, 512)]
  sd = {"conv1.weight": _conv_w(rng, w[0], 3, 7), **_bn_sd(rng, "bn1", w[0])}
  cin = w[0]
  for s in range(4):
    for b in range(2):
      p = f"layer{s + 1}.{b}"
      sd[f"{p}.conv1.weight"] = _conv_w(rng, w[s], cin, 3)
      sd.update(_bn_sd(rng, f"{p}.bn1", w[s]))
      sd[f"{p}.conv2.weight"] = _conv_w(rng, w[s], w[s], 3)
      sd.update(_bn_sd(rng, f"{p}.bn2", w[s]))
      if b == 0 and s > 0:
        sd[f"{p}.downsample.0.weight"] = _conv_w(rng, w[s], cin, 1)
        sd.update(_bn_sd(rng, f"{p}.downsample.1", w[s]))
      cin = w[s]
  sd["fc.weight"] = rng.uniform(-0.3, 0.3, (classes, cin)).astype(np.float32)
  sd["fc.bias"] = rng.uniform(-0.3, 0.3, classes).astype(np.float32)
  return sd


# -- float64 NumPy forward passes in torch's layout ---------------------------------------


def np_conv(x, w, b=None, stride=1, pad=0):
  """NCHW x, OIHW w: out[n,o,y,x] = sum_{c,i,j} w[o,c,i,j] x[n,c,y*s+i-pad,x*s+j-pad]."""
  x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
  k = w.shape[2]
  ho, wo = (x.shape[2] - k) // stride + 1, (x.shape[3] - k) // stride + 1
  out = np.zeros((x.shape[0], w.shape[0], ho, wo))
  for i in range(k):
    for j in range(k):
      patch = x[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride]
      out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j].astype(np.float64))
  return out if b is None else out + b[None, :, None, None]


def np_maxpool(x, k, stride, pad=0):
  x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
  ho, wo = (x.shape[2] - k) // stride + 1, (x.shape[3] - k) // stride + 1
  out = np.full((*x.shape[:2], ho, wo), -np.inf)
  for i in range(k):
    for j in range(k):
      out = np.maximum(out, x[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride])
  return out


def np_bn(x, sd, p, eps=1e-5):
  g = lambda k: sd[f"{p}.{k}"].astype(np.float64)[None, :, None, None]
  return (x - g("running_mean")) / np.sqrt(g("running_var") + eps) * g("weight") + g("bias")


def np_vgg(sd, x, *, bn=False, blocks=VGG16):
  relu = lambda v: np.maximum(v, 0)
  i = 0
  for block in blocks:
    for _ in block:
      x = np_conv(x, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], pad=1)
      i += 1
      if bn:
        x = np_bn(x, sd, f"features.{i}")
        i += 1
      x, i = relu(x), i + 1
    x, i = np_maxpool(x, 2, 2), i + 1
  x = x.reshape(len(x), -1)  # torch.flatten of NCHW
  for k, name in enumerate(("classifier.0", "classifier.3", "classifier.6")):
    x = x @ sd[f"{name}.weight"].astype(np.float64).T + sd[f"{name}.bias"]
    x = relu(x) if k < 2 else x
  return x


def np_resnet(sd, x, eps=1e-5):
  relu = lambda v: np.maximum(v, 0)
  bn = lambda v, p: np_bn(v, sd, p, eps)
  x = relu(bn(np_conv(x, sd["conv1.weight"], stride=2, pad=3), "bn1"))
  x = np_maxpool(x, 3, 2, pad=1)
  for s in range(1, 5):
    for b in range(2):
      p, stride = f"layer{s}.{b}", 2 if (s > 1 and b == 0) else 1
      y = relu(bn(np_conv(x, sd[f"{p}.conv1.weight"], stride=stride, pad=1), f"{p}.bn1"))
      y = bn(np_conv(y, sd[f"{p}.conv2.weight"], pad=1), f"{p}.bn2")
      if f"{p}.downsample.0.weight" in sd:
        x = bn(np_conv(x, sd[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
      x = relu(x + y)
  x = x.mean(axis=(2, 3))
  return x @ sd["fc.weight"].astype(np.float64).T + sd["fc.bias"]


def flax_logits(c, x_nchw):
  graphdef, _, _ = functional.abstract_init(c.arch, num_classes=c.num_classes, **c.model_kwargs)
  x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1), np.float32)
  out, _ = functional.apply(graphdef, c.params, c.rest, x)
  return np.asarray(out, np.float64)


def rel_err(got, want):
  return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


# -- tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("bn", [False, True])
def test_vgg16_logits_match_float64_torch_layout_forward(bn):
  rng = np.random.default_rng(0)
  sd = vgg_state_dict(rng, bn=bn)
  c = torch_weights.convert(sd, "vgg16_bn" if bn else "vgg16")
  assert c.model_kwargs["image_size"] == 64 and c.num_classes == 5
  last = "features.40.weight" if bn else "features.28.weight"  # torchvision's indices
  assert c.key_map["backbone/conv5_3/conv/kernel"] == last
  assert bool(c.rest) == bn
  x = rng.uniform(-1, 1, (3, 3, 64, 64))
  want = np_vgg(sd, x, bn=bn)
  assert rel_err(flax_logits(c, x), want) <= 1e-4
  # fc6's rows really are permuted (NCHW -> NHWC flatten): the naive transpose is wrong here.
  naive = {**c.params, "head": {**c.params["head"], "fc6": {
    "kernel": sd["classifier.0.weight"].T, "bias": sd["classifier.0.bias"]}}}  # fmt: skip
  wrong = torch_weights.Converted(c.arch, naive, c.rest, c.model_kwargs, c.num_classes, {})
  assert rel_err(flax_logits(wrong, x), want) > 1e-2


def test_vgg19_logits_and_torchvision_indices():
  rng = np.random.default_rng(9)
  sd = vgg_state_dict(rng, blocks=VGG19)
  c = torch_weights.convert(sd, "vgg19")
  assert c.key_map["backbone/conv5_4/conv/kernel"] == "features.34.weight"  # torchvision vgg19
  x = rng.uniform(-1, 1, (2, 3, 64, 64))
  assert rel_err(flax_logits(c, x), np_vgg(sd, x, blocks=VGG19)) <= 1e-4
  with pytest.raises(ValueError, match="features.17.weight"):  # VGG-19 weights are no VGG-16
    torch_weights.convert(sd, "vgg16")


def test_vgg_bn_statistics_are_used():
  """Running statistics land in the model state: zeroing them moves the logits."""
  rng = np.random.default_rng(1)
  sd = vgg_state_dict(rng, bn=True)
  c = torch_weights.convert(sd, "vgg16_bn")
  # torchvision vgg16_bn: conv2_1 is features.7, its BN features.8, the last conv features.40.
  assert np.array_equal(c.rest["backbone"]["conv2_1"]["bn"]["var"], sd["features.8.running_var"])
  assert np.array_equal(c.params["backbone"]["conv2_1"]["bn"]["scale"], sd["features.8.weight"])
  assert c.key_map["backbone/conv5_3/conv/kernel"] == "features.40.weight"
  x = rng.uniform(-1, 1, (2, 3, 64, 64))
  sd0 = {k: (np.zeros_like(v) if k.endswith("running_mean") else v) for k, v in sd.items()}
  assert rel_err(flax_logits(c, x), np_vgg(sd0, x, bn=True)) > 1e-3


def test_timm_vgg_names_give_the_same_model():
  rng = np.random.default_rng(2)
  sd_tv = vgg_state_dict(rng)
  rng = np.random.default_rng(2)
  sd_timm = vgg_state_dict(rng, timm=True)
  a, b = torch_weights.convert(sd_tv, "vgg16"), torch_weights.convert(sd_timm, "vgg16")
  assert a.model_kwargs == b.model_kwargs
  for la, lb in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
    np.testing.assert_array_equal(la, lb)


def test_resnet18_logits_match_float64_torch_layout_forward():
  rng = np.random.default_rng(3)
  sd = resnet_state_dict(rng)
  c = torch_weights.convert(sd, "resnet18")
  assert c.model_kwargs["stem"] == "imagenet" and list(c.model_kwargs["blocks"]) == [2, 2, 2, 2]
  x = rng.uniform(-1, 1, (3, 3, 64, 64))
  assert rel_err(flax_logits(c, x), np_resnet(sd, x)) <= 1e-4
  # Batch-norm eps and statistics matter at this tolerance: eps 1e-3 is measurably different.
  want_eps = np_resnet(sd, x, eps=1e-3)
  assert rel_err(flax_logits(c, x), want_eps) > 1e-4


def test_bad_state_dicts_fail_with_the_key_named():
  rng = np.random.default_rng(4)
  sd = vgg_state_dict(rng)
  del sd["features.24.weight"]
  with pytest.raises(ValueError, match="features.24.weight"):
    torch_weights.convert(sd, "vgg16")
  with pytest.raises(ValueError, match="no key 'features.0.weight'"):
    torch_weights.convert(resnet_state_dict(rng), "vgg16")
  with pytest.raises(ValueError, match="features.2.weight"):  # a BN state dict read without BN
    torch_weights.convert(vgg_state_dict(rng, bn=True), "vgg16")
  extra = {**vgg_state_dict(rng), "aux.fc.weight": np.zeros((2, 2), np.float32)}
  with pytest.raises(ValueError, match="not used by vgg16.*aux.fc.weight"):
    torch_weights.convert(extra, "vgg16")
  with pytest.raises(ValueError, match="unknown architecture"):
    torch_weights.convert(sd, "alexnet")


def test_safetensors_file_into_the_zoo(tmp_path):
  rng = np.random.default_rng(5)
  sd = resnet_state_dict(rng)
  path = tmp_path / "r18.safetensors"
  save_file({f"module.{k}": v for k, v in sd.items()}, str(path))  # DataParallel prefix
  entry = torch_weights.import_file(tmp_path / "wd", path, arch="resnet18", source="imnet")
  ckpt = checkpointing.checkpoint_path(tmp_path / "wd", "imnet", "resnet18", 0, 0)
  assert checkpointing.exists(ckpt) and entry.path == str(ckpt.absolute())
  saved = zoo.read_entry(ckpt)  # the one record, in the checkpoint's own metadata
  assert saved == entry and saved.origin == zoo.IMPORTED and saved.index is None
  assert saved.num_classes == 5 and saved.model_kwargs["stem"] == "imagenet"
  assert saved.imported_from["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
  assert saved.imported_from["original_keys"]["backbone/stem/conv/kernel"] == "conv1.weight"
  assert saved.content_hash == checkpointing.tree_hash(checkpointing.restore(ckpt))
  params, rest = checkpointing.split_rest(checkpointing.restore(ckpt))
  np.testing.assert_array_equal(
    params["backbone"]["stage2_block1"]["down_conv"]["kernel"],
    sd["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0),
  )
  np.testing.assert_array_equal(rest["backbone"]["stem"]["bn"]["mean"], sd["bn1.running_mean"])
  rows = results.load(tmp_path / "wd", "checkpoints")
  assert rows[["source", "arch", "seed", "step"]].values.tolist() == [["imnet", "resnet18", 0, 0]]
  assert rows["path"].tolist() == [str(ckpt.relative_to(tmp_path / "wd"))]
  assert [e.key for e in zoo.select(tmp_path / "wd")] == [("imnet", "resnet18", 0, 0)]
  # Importing the same file again is a no-op; different weights under the same key fail.
  meta = sorted((p.name, p.stat().st_mtime_ns) for p in ckpt.rglob("*"))
  again = torch_weights.import_file(tmp_path / "wd", path, arch="resnet18", source="imnet")
  assert again == entry and sorted((p.name, p.stat().st_mtime_ns) for p in ckpt.rglob("*")) == meta
  other = tmp_path / "other.safetensors"
  save_file(resnet_state_dict(np.random.default_rng(6)), str(other))
  with pytest.raises(FileExistsError, match="another --seed"):
    torch_weights.import_file(tmp_path / "wd", other, arch="resnet18", source="imnet")


def test_reimport_over_an_old_importers_checkpoint(tmp_path):
  # The first importers saved a flat record (no zoo record) and, earlier still, no content hash:
  # the workdir is refused until migrated (which writes the record and the hash); then the same
  # weights again are a no-op, other weights still fail.
  rng = np.random.default_rng(11)
  sd = vgg_state_dict(rng)
  path = tmp_path / "v.safetensors"
  save_file(sd, str(path))
  c = torch_weights.convert(sd, "vgg16")
  ckpt = checkpointing.checkpoint_path(tmp_path / "wd", "s", "vgg16", 0, 0)
  provenance = {"format": "torch", "file": str(path), "file_sha256": "ab" * 32,
                "original_keys": c.key_map}  # fmt: skip
  checkpointing.save(ckpt, c.params, extra=dict(
    source="s", arch="vgg16", seed=0, step=0, epoch=None, num_classes=c.num_classes,
    model_kwargs=c.model_kwargs, provenance=provenance))  # fmt: skip
  shutil.rmtree(ckpt / "integrity")  # saved before checkpoints recorded a content hash
  assert checkpointing.content_hash(ckpt) is None
  with pytest.raises(ValueError, match="python -m jtransfer migrate"):
    torch_weights.import_file(tmp_path / "wd", path, arch="vgg16", source="s")
  migrate.migrate(tmp_path / "wd")
  entry = torch_weights.import_file(tmp_path / "wd", path, arch="vgg16", source="s")
  assert entry.origin == zoo.IMPORTED and entry.imported_from["file_sha256"] == "ab" * 32
  assert entry.num_classes == c.num_classes
  assert entry.content_hash == checkpointing.tree_hash(c.params)
  assert results.load(tmp_path / "wd", "checkpoints")["source"].tolist() == ["s"]
  other = tmp_path / "other.safetensors"
  save_file(vgg_state_dict(np.random.default_rng(12)), str(other))
  with pytest.raises(FileExistsError, match="another --seed"):
    torch_weights.import_file(tmp_path / "wd", other, arch="vgg16", source="s")


def test_head_kept_or_replaced(tmp_path):
  rng = np.random.default_rng(7)
  sd = vgg_state_dict(rng)
  path = tmp_path / "v.safetensors"
  save_file(sd, str(path))
  with pytest.raises(ValueError, match="head='new'"):
    torch_weights.import_file(tmp_path / "wd", path, arch="vgg16", source="s", num_classes=3)
  rec = torch_weights.import_file(
    tmp_path / "wd", path, arch="vgg16", source="s", head="new", num_classes=3
  )
  assert rec.num_classes == 3 and rec.imported_from["head"] == "new"
  assert zoo.read_entry(rec.path) == rec
  params = checkpointing.restore(rec.path)
  # The backbone is the file's; the head is the architecture's fresh init (seed 0) for 3 classes.
  np.testing.assert_array_equal(
    params["backbone"]["conv1_1"]["conv"]["kernel"], sd["features.0.weight"].transpose(2, 3, 1, 0)
  )
  c = torch_weights.convert(sd, "vgg16")
  _, fresh, _ = functional.init("vgg16", num_classes=3, seed=0, **c.model_kwargs)
  np.testing.assert_array_equal(params["head"]["fc6"]["kernel"], fresh["head"]["fc6"]["kernel"])
  assert params["head"]["logits"]["kernel"].shape == (16, 3)


def test_pth_state_dict(tmp_path):
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(8)
  sd = resnet_state_dict(rng)
  path = tmp_path / "r.pth"
  torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in sd.items()}}, path)
  got = torch_weights.read_state_dict(path)
  assert set(got) == set(sd)
  np.testing.assert_array_equal(got["layer3.1.conv2.weight"], sd["layer3.1.conv2.weight"])
