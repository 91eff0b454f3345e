"""Audio models: sizes against the NC paper's table, taps, front end, vmap over params."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jtransfer.models.audio  # noqa: F401  (registers the audio models)
from jtransfer.audio.logmel import LogMelConfig, log_mel
from jtransfer.models import base

# NC paper, Table 1 (parameters of the pre-trained audio models).
TABLE = {"audio_cnn": 0.43e6, "audio_crnn": 0.53e6, "dcase_cnn": 4.31e6}


def _count(name, **kwargs):
  model = nnx.eval_shape(lambda: base.get_model(name, num_classes=10, rngs=nnx.Rngs(0), **kwargs))
  return base.count_params(nnx.state(model, nnx.Param))


@pytest.mark.parametrize("name", sorted(TABLE))
def test_parameter_counts_match_the_table(name):
  n = _count(name)
  assert abs(n - TABLE[name]) <= 0.10 * TABLE[name], (name, n)


def test_dcase_cnn_closed_form_counts():
  # CNN4: four bias-free 5x5 convs 1-64-128-256-512, BN scale+bias, linear 512 -> 10.
  convs = 25 * (1 * 64 + 64 * 128 + 128 * 256 + 256 * 512)
  bn = 2 * (64 + 128 + 256 + 512)
  assert _count("dcase_cnn") == convs + bn + 512 * 10 + 10
  # CNN8: two 3x3 convs per block.
  convs8 = 9 * sum(a * b + b * b for a, b in [(1, 64), (64, 128), (128, 256), (256, 512)])
  assert _count("dcase_cnn", depth=8) == convs8 + 2 * bn + 512 * 10 + 10
  assert abs(_count("dcase_cnn", depth=8) - TABLE["dcase_cnn"]) <= 0.10 * TABLE["dcase_cnn"]


N = 2000  # 0.25 s clips (17 frames) keep the tests fast; the models default to 8000 samples


def _build(name, seed=0, **kwargs):
  return base.get_model(name, num_classes=4, rngs=nnx.Rngs(seed), num_samples=N, **kwargs)


@pytest.fixture(scope="module")
def crnns():
  """Three seeds of the tiny CRNN (same shapes, so parameter init compiles once)."""
  return [_build("audio_crnn_tiny", seed=s) for s in range(3)]


@pytest.fixture(scope="module")
def cnn():
  return _build("audio_cnn_tiny")


@functools.partial(jax.jit, static_argnums=(0, 3))
def _jit_apply(graphdef, state, x, taps):
  return nnx.merge(graphdef, state)(x, taps=taps)


def _call(model, x, taps=None):
  """model(x, taps=taps) jitted once per architecture (eager NNX calls compile op by op)."""
  graphdef, state = nnx.split(model)
  return _jit_apply(graphdef, state, x, taps)


def _wave(batch=2, n=N, seed=0):
  return jnp.asarray(0.1 * np.random.default_rng(seed).standard_normal((batch, n)), jnp.float32)


@pytest.mark.parametrize(
  "name, taps",
  [
    ("audio_cnn_tiny", {"block1": (8, 32, 8), "block3": (2, 8, 32), "pool": (32,), "fc1": (32,)}),
    ("audio_crnn_tiny", {"block2": (4, 16, 16), "gru": (16,), "fc1": (32,)}),
    ("dcase_cnn_tiny", {"block4": (1, 4, 64), "pool": (64,)}),
  ],
)
def test_taps_layers_and_shapes(name, taps):
  # Shapes only: abstract init and forward (no compilation).
  model = nnx.eval_shape(lambda: _build(name))
  assert model.taps[-1] == "logits" and model.layers[-1] == "logits"
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  assert set(params) == {"backbone", "head"} and set(params["head"]) == {"logits"}
  assert set(params["backbone"]) | set(params["head"]) == set(model.layers)
  graphdef, state = nnx.split(model)
  x = jax.ShapeDtypeStruct((2, N), jnp.float32)
  out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x, taps=model.taps), state, x)
  assert set(out) == set(model.taps)  # (eval_shape returns the dict with sorted keys)
  for tap, shape in taps.items():
    assert out[tap].shape == (2, *shape), tap
  assert out["logits"].shape == (2, 4)


def test_logits_and_global_pool(cnn):
  x = _wave()
  out = _call(cnn, x, taps=cnn.taps)
  np.testing.assert_array_equal(out["pool"], np.max(np.asarray(out["block3"]), axis=(1, 2)))
  np.testing.assert_allclose(_call(cnn, x), out["logits"], rtol=1e-6, atol=1e-6)
  # Early taps stop the forward pass but give the same values.
  np.testing.assert_allclose(_call(cnn, x, taps=("block1",))["block1"], out["block1"], rtol=1e-6)


def test_logmel_input_kind_equals_waveform_input(crnns):
  mel_model = _build("audio_crnn_tiny", seed=0, input_kind="logmel")
  x = _wave()
  np.testing.assert_allclose(
    _call(mel_model, log_mel(x, LogMelConfig())), _call(crnns[0], x), rtol=1e-5, atol=1e-6
  )
  with pytest.raises(ValueError, match=r"expects inputs of shape \[batch, 17, 64\]"):
    mel_model(x)
  with pytest.raises(ValueError, match=rf"\[batch, {N}\]"):
    crnns[0](x[:, : N // 2])


def test_vmap_over_stacked_params_equals_separate_calls(crnns):
  splits = [nnx.split(m, nnx.Param, ...) for m in crnns]
  graphdef = splits[0][0]
  params = jax.tree.map(lambda *a: jnp.stack(a), *[s[1] for s in splits])
  rest = jax.tree.map(lambda *a: jnp.stack(a), *[s[2] for s in splits])
  taps = ("block2", "gru", "logits")

  def apply(p, r, x):
    return nnx.merge(graphdef, p, r)(x, taps=taps)

  x = _wave(3)
  stacked = jax.jit(jax.vmap(apply, in_axes=(0, 0, None)))(params, rest, x)
  for i, m in enumerate(crnns):
    single = _call(m, x, taps=taps)
    assert not np.allclose(single["logits"], _call(crnns[(i + 1) % 3], x))  # seeds differ
    for t in taps:
      np.testing.assert_allclose(stacked[t][i], single[t], rtol=1e-4, atol=1e-5)


def test_train_mode_uses_batch_statistics_and_updates_them():
  model = _build("audio_cnn_tiny", seed=1)
  x = _wave(4)
  feats = log_mel(x, LogMelConfig())[..., None]
  conv = np.asarray(model.backbone["block1"].conv1(feats), np.float64)
  before = np.asarray(model.backbone["block1"].bn1.mean[...])
  graphdef, state = nnx.split(model)

  def train_step(state, x):
    m = nnx.merge(graphdef, state)
    out = m(x, taps=("block1",), train=True)["block1"]
    return out, nnx.state(m)

  out, state = jax.jit(train_step)(state, x)
  # Reference: batch-norm with the batch's own mean / biased variance, ReLU, 2x2 max-pool.
  mu, var = conv.mean(axis=(0, 1, 2)), conv.var(axis=(0, 1, 2))
  ref = np.maximum((conv - mu) / np.sqrt(var + 1e-5), 0.0)
  b, t, f, c = ref.shape
  ref = ref[:, : t // 2 * 2, : f // 2 * 2].reshape(b, t // 2, 2, f // 2, 2, c).max(axis=(2, 4))
  np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3)
  after = np.asarray(nnx.merge(graphdef, state).backbone["block1"].bn1.mean[...])
  np.testing.assert_allclose(after, 0.9 * before + 0.1 * mu, rtol=1e-4, atol=1e-5)


def test_models_take_their_input_hyperparameters_from_the_data():
  from jtransfer import data
  from jtransfer.models import functional

  fsdd, speech = data.get("fsdd_digit"), data.get("speech_commands")
  kw16 = base.fit_to_data("audio_cnn_tiny", {"fc": 16, "num_samples": 8000}, speech)
  assert kw16 == {"fc": 16, "num_samples": 16_000, "sample_rate": 16_000}  # the data wins
  kw8 = base.fit_to_data("audio_cnn_tiny", kw16, fsdd)
  assert kw8 == {"fc": 16, "num_samples": 8000, "sample_rate": 8000}
  g16, p16, r16 = functional.init("audio_cnn_tiny", num_classes=3, seed=0, **kw16)
  g8, p8, _ = functional.init("audio_cnn_tiny", num_classes=3, seed=0, **kw8)
  # The front end has no weights: a 16 kHz model's parameters load into the 8 kHz one.
  assert jax.tree.map(np.shape, p16) == jax.tree.map(np.shape, p8)
  m16 = functional.merge(g16, p16, r16)
  assert m16.frontend.sample_rate == 16_000 and m16.frontend.win == 480  # 30 ms at 16 kHz
  assert functional.merge(g8, p8, r16).frontend.win == 240
  # The window follows the rate; the mel map of a 16 kHz clip is the reference front end's.
  x = np.random.default_rng(0).normal(size=(2, 16_000)).astype(np.float32)
  want = log_mel(jnp.asarray(x), LogMelConfig(sample_rate=16_000))
  g_mel, _, _ = functional.init("audio_cnn_tiny", num_classes=3, seed=0, input_kind="logmel",
                                **{**kw16, "num_samples": 16_000})  # fmt: skip
  np.testing.assert_allclose(
    functional.apply(g16, p16, r16, x)[0],
    functional.apply(g_mel, p16, r16, want)[0],
    rtol=1e-5,
    atol=1e-6,
  )
  # Image models have no input hyperparameters to fit; audio models refuse image data.
  assert base.fit_to_data("cnn", {"width": 0.5}, data.get("mnist")) == {"width": 0.5}
  with pytest.raises(ValueError, match="audio models read audio datasets"):
    base.fit_to_data("audio_cnn", {}, data.get("mnist"))


def test_frontend_from_a_json_mapping():
  model = base.get_model(
    "audio_cnn_tiny", num_classes=2, rngs=nnx.Rngs(0), frontend={"n_mels": 32, "hop_ms": 10.0}
  )
  assert model.frontend == LogMelConfig(n_mels=32, hop_ms=10.0)
  model = base.get_model(
    "audio_cnn_tiny", num_classes=2, rngs=nnx.Rngs(0), frontend={"n_mels": 32}, sample_rate=16_000
  )
  assert model.frontend == LogMelConfig(n_mels=32, sample_rate=16_000)
