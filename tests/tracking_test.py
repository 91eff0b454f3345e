"""Training curves in the store's `metrics` table and in TensorBoard event files; log files."""

import logging

import jax
import numpy as np
import pytest
from flax import nnx
from stage_calls import run_job

from jtransfer import data
from jtransfer.data import batches
from jtransfer.jobs import finetune, pretrain
from jtransfer.models import base
from jtransfer.runtime import progress
from jtransfer.store import results, tracking


def test_record_steps_are_log_spaced_plus_every_k_and_the_last():
  assert tracking.record_steps(12, 5) == {0, 1, 2, 5, 10, 11}
  assert tracking.record_steps(250) == {0, 1, 2, 5, 10, 20, 50, 100, 200, 249}
  assert tracking.record_steps(1) == {0} and tracking.record_steps(0) == frozenset()


def test_writer_store_and_tensorboard_hold_the_same_values(tmp_path):
  rng = np.random.default_rng(0)
  values = {(u, s): rng.normal(size=2) for u in ("a/seed_0", "a/seed_1") for s in (0, 3, 7)}
  with results.Store(tmp_path) as store:
    writer = tracking.MetricWriter(tmp_path, "pretrain", store)
    for (unit, step), (loss, acc) in values.items():
      writer.scalars(unit, step, {"train/loss": loss, "train/accuracy": acc})
    writer.scalars("a/seed_0", 9, {"eval/test_auroc": float("nan")})  # stored as NULL
    writer.close()
  df = results.load(tmp_path, "metrics")
  assert len(df) == 2 * len(values) + 1 and set(df["job"]) == {"pretrain"}
  got = {(r.unit, r.step, r.name): r.value for r in df.itertuples()}
  events = tracking.read_tensorboard(tmp_path / "tensorboard" / "pretrain")
  for (unit, step), (loss, acc) in values.items():
    assert got[unit, step, "train/loss"] == loss and got[unit, step, "train/accuracy"] == acc
    assert (step, pytest.approx(loss, rel=1e-6)) in events[f"{unit}/train/loss"]
  assert np.isnan(got["a/seed_0", 9, "eval/test_auroc"])
  assert "a/seed_0/eval/test_auroc" not in events  # a NaN is not drawn
  assert [s for s, _ in events["a/seed_1/train/accuracy"]] == [0, 3, 7]


def _cross_entropy64(logits, labels) -> float:
  z = np.asarray(logits, np.float64)
  z = z - z.max(axis=1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
  return float(-logp[np.arange(len(labels)), labels].mean())


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp("zoo")
  kwargs = {"dropout1": 0.0, "dropout2": 0.0}  # the train-mode batch loss = the eval-mode one
  summary = run_job(pretrain,
    workdir=workdir, source="mnist", arch="cnn_tiny", model_kwargs=kwargs, num_seeds=2,
    batch_size=16, duration={"steps": 12}, train_examples=64, eval_batch_size=64,
    eval_train_examples=64, eval_test_examples=64, data_dir=data_dir, log_every_steps=5,
    show_progress=False, profile_steps=2,
  )  # fmt: skip
  return workdir, kwargs, summary


def test_pretrain_records_batch_loss_at_the_record_steps(zoo, data_dir):
  workdir, kwargs, summary = zoo
  m = results.load(workdir, "metrics")
  m = m[m["job"] == "pretrain"]
  for seed in (0, 1):
    unit = m[m["unit"] == f"mnist/cnn_tiny/seed_{seed}"]
    loss = unit[unit["name"] == "train/loss"].set_index("step")["value"]
    assert sorted(loss.index) == [0, 1, 2, 5, 10, 11]
    # Step 0's batch loss, recomputed: seed's initial model on seed's first batch, float64 CE.
    x, y = data.load("mnist", "train", data_dir=data_dir)
    x = np.asarray(data.normalize("mnist", x[:64]), np.float32)
    idx = next(batches.index_stream([seed], num_examples=64, batch_size=16))[0]
    model = base.get_model(
      "cnn_tiny", num_classes=10, rngs=nnx.Rngs(jax.random.key(seed)), **kwargs
    )
    expected = _cross_entropy64(model(x[idx]), np.asarray(y[:64])[idx])
    np.testing.assert_allclose(loss[0], expected, rtol=1e-5)
    assert np.isfinite(loss).all() and loss[0] != loss[11]
    # Each checkpoint's evaluation is in metrics too, equal to the checkpoints table.
    ck = results.load(workdir, "checkpoints")
    ck = ck[ck["seed"] == seed].set_index("step")
    acc = unit[unit["name"] == "eval/test_acc"].set_index("step")["value"]
    assert sorted(acc.index) == summary["checkpoint_steps"]
    np.testing.assert_allclose(acc.sort_index(), ck.loc[acc.sort_index().index, "test_acc"])


def test_pretrain_tensorboard_matches_the_store(zoo):
  workdir, _, _ = zoo
  events = tracking.read_tensorboard(workdir / "tensorboard" / "pretrain")
  m = results.load(workdir, "metrics")
  m = m[m["job"] == "pretrain"]
  assert len(events) == m.groupby(["unit", "name"]).ngroups
  for (unit, name), rows in m.groupby(["unit", "name"]):
    tb = dict(events[f"{unit}/{name}"])
    assert sorted(tb) == sorted(rows["step"])
    np.testing.assert_allclose([tb[s] for s in rows["step"]], rows["value"], rtol=1e-6)


def test_profile_trace_is_written(zoo):
  workdir, _, _ = zoo
  traces = list((workdir / "profile" / "pretrain").rglob("*.xplane.pb"))
  assert len(traces) == 1 and traces[0].stat().st_size > 0


def test_pretrain_log_labels_seeds(zoo):
  workdir, _, _ = zoo
  text = (workdir / "logs" / "pretrain.log").read_text()
  # The CPU default trains one seed after another: one labelled line per seed and step.
  for seed in (0, 1):
    assert f"step 12 (3 epochs): test acc seed {seed}=" in text


def test_finetune_records_train_and_eval_curves(zoo, data_dir):
  workdir, kwargs, _ = zoo
  summary = run_job(finetune,
    workdir=workdir, target="mnist", modes=("full",), duration={"steps": 6}, batch_size=16,
    train_examples=64, eval_examples=64, eval_batch_size=64, steps=[12], baselines=False,
    model_kwargs=kwargs, data_dir=data_dir, show_progress=False,
  )  # fmt: skip
  assert summary["units"] == 2
  m = results.load(workdir, "metrics")
  m = m[m["job"] == "finetune"]
  ft = results.load(workdir, "finetune")
  for seed in (0, 1):
    unit = f"mnist/mnist/cnn_tiny/seed_{seed}/step_12/frozen_0/ft_seed_0"
    rows = m[m["unit"] == unit]
    assert sorted(rows.loc[rows["name"] == "train/loss", "step"]) == [0, 1, 2, 5]
    curve = ft[ft["seed"] == seed].set_index("ft_step")["test_acc"].sort_index()
    acc = rows[rows["name"] == "eval/test_acc"].set_index("step")["value"].sort_index()
    assert list(acc.index) == list(curve.index)
    np.testing.assert_allclose(acc, curve)
  events = tracking.read_tensorboard(workdir / "tensorboard" / "finetune")
  assert {s for s, _ in events[f"{unit}/train/loss"]} == {0, 1, 2, 5}


def test_progress_lines_have_eta_and_notes(monkeypatch, caplog):
  monkeypatch.setenv("JTRANSFER_QUIET", "1")
  with caplog.at_level(logging.INFO, logger="jtransfer.runtime.progress"):
    bar = progress.progress(total=10, desc="pretrain", log_every_s=0.0)
    with tracking.compile_note(bar, "train step", first=True):
      pass
    for _ in range(10):
      bar.update(1)
    bar.close()
    bar.close()
  lines = [r.getMessage() for r in caplog.records]
  assert lines[0] == "pretrain: compiling the train step ..."
  assert lines[1].startswith("pretrain: train step compiled in ")
  assert ", ETA " in lines[2] and "1/10" in lines[2]
  assert ", ETA " in lines[3] and "2/10" in lines[3]
  assert lines[-1].startswith("pretrain: 10/10 it") and lines[-1].endswith("done")
  assert sum(line.endswith("done") for line in lines) == 1


def test_progress_rate_and_eta_skip_the_first_update(monkeypatch, caplog):
  monkeypatch.setenv("JTRANSFER_QUIET", "1")
  now = [0.0]
  monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
  with caplog.at_level(logging.INFO, logger="jtransfer.runtime.progress"):
    bar = progress.progress(total=12, desc="pretrain", log_every_s=0.0)
    now[0] = 50.0
    bar.update(1)  # the first step (a compile) took 50 s
    now[0] = 60.0
    bar.update(1)  # the second 10 s: 10 left at 0.1 it/s
  lines = [r.getMessage() for r in caplog.records]
  assert lines[0] == "pretrain: 1/12 it (0.02 it/s, 50s, ETA 9m10s)"
  assert lines[1] == "pretrain: 2/12 it (0.1 it/s, 1m00s, ETA 1m40s)"


def test_tensorboard_has_one_run_per_unit_with_plain_tags_and_the_config(tmp_path):
  # More units than open event files: every value still lands in its own run's folder.
  units = [f"mnist/cnn/seed_{i}" for i in range(tracking.MAX_OPEN_RUNS + 5)]
  with results.Store(tmp_path) as store:
    writer = tracking.MetricWriter(tmp_path, "pretrain", store)
    writer.config({"lr": 1e-3, "sources": ["mnist"]})
    for step in (0, 1):
      for i, unit in enumerate(units):
        writer.scalars(unit, step, {"train/loss": i + step / 10, "eval/test_acc": 0.5})
    writer.close()
  root = tmp_path / "tensorboard" / "pretrain"
  for i, unit in enumerate(units):
    run = tracking.read_tensorboard(root / unit)
    assert set(run) == {"train/loss", "eval/test_acc"}  # tags without the unit inside
    assert sorted(run["train/loss"]) == [(0, pytest.approx(i)), (1, pytest.approx(i + 0.1))]
  # The config is text in the job's own run, next to (not inside) the units' runs.
  from tensorboardX.proto import event_pb2

  files = sorted(root.glob("events.out.tfevents.*"))
  assert len(files) == 1
  data, texts = files[0].read_bytes(), []
  pos = 0
  while pos + 12 <= len(data):
    length = int.from_bytes(data[pos : pos + 8], "little")
    event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
    pos += 12 + length + 4
    texts += [
      v.tensor.string_val[0].decode() for v in event.summary.value if v.tag.startswith("config")
    ]
  assert texts and '"lr": 0.001' in texts[0] and '"sources"' in texts[0]
