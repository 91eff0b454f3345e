"""The score job on a tiny zoo of random-init `cnn_tiny` checkpoints and a synthetic target."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from stage_calls import run_job

from jtransfer import data, scores
from jtransfer.analysis import tables
from jtransfer.jobs import score as score_job
from jtransfer.models import functional
from jtransfer.runtime import extract
from jtransfer.scores import regimes
from jtransfer.store import checkpointing, results, zoo
from jtransfer.train import schedule

SYNTH = "score_job_test_synth"  # 3 classes, 28x28x1, 20 per class per split
MEAN, STD = 0.5, 0.25
SPE = 10  # steps per epoch of the fake runs: schedule 0, 1, 3, 10 (= 1 epoch), 30, ...
PER_CLASS = 10
# The scores the job computes by default (N-LEEP is asked for by name: `ScoreSpec.by_default`).
FEATURE_SCORES = [n for n, s in scores.REGISTRY.items() if s.needs_features and s.by_default]


def _synth_loader(split, data_dir):
  rng = np.random.default_rng({"train": 0, "test": 1}[split])
  y = rng.permutation(np.repeat(np.arange(3), 20)).astype(np.int32)
  x = rng.uniform(size=(60, 28, 28, 1))
  x[:, 4:12, 4:12, 0] += y[:, None, None]  # a class-dependent patch
  return (x / 3).astype(np.float32), y


def register_synth():
  if SYNTH not in data.names():
    data.register(
      data.DatasetSpec(
        name=SYNTH, num_classes=3, class_names=("a", "b", "c"), input_shape=(28, 28, 1),
        splits=("train", "test"), loader=_synth_loader, mean=(MEAN,), std=(STD,),
      )
    )  # fmt: skip


def make_zoo(workdir, specs, *, zero=()):
  """Saves one random-init cnn_tiny checkpoint (+ checkpoints row) per (source, seed, step)."""
  workdir = pathlib.Path(workdir)
  with results.Store(workdir) as store:
    for k, (source, seed, step) in enumerate(specs):
      nc = data.get(source).num_classes
      _, params, _ = functional.init("cnn_tiny", num_classes=nc, seed=100 + k)
      if (source, seed, step) in zero:
        params = jax.tree.map(np.zeros_like, params)
      # Its place in the thesis schedule of a run with SPE steps per epoch.
      index = sum(s < step for s in schedule.log_checkpoint_steps(SPE, step))
      entry = zoo.Entry(source=source, arch="cnn_tiny", seed=seed, step=step, num_classes=nc,
                        model_kwargs={}, index=index, epoch=step / SPE)  # fmt: skip
      store.add_checkpoint(**zoo.write_entry(workdir, entry, params).index_row(workdir))


class _Recorder:
  """Wraps `extract.extract` to record the probe and models of every call."""

  def __init__(self):
    self.calls = []
    self._orig = extract.extract

  def __call__(self, graphdef, params, rest, inputs, **kw):
    self.calls.append((np.array(inputs), np.shape(params["head"]["logits"]["bias"])[-1]))
    return self._orig(graphdef, params, rest, inputs, **kw)


ZOO = [("mnist", 0, 0), ("mnist", 0, 3), ("mnist_split_0_4", 1, 0), ("mnist_split_0_4", 1, 10)]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
  register_synth()
  workdir = tmp_path_factory.mktemp("zoo")
  make_zoo(workdir, ZOO)
  recorder = _Recorder()
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(extract, "extract", recorder)
    # A 1-byte budget: every checkpoint is its own group, so the probe is fed 4 separate times.
    summary = run_job(score_job,
      workdir=workdir, target=SYNTH, probe_per_class=PER_CLASS, layers=("pool2",),
      memory_budget_bytes=1, show_progress=False,
    )  # fmt: skip
  return workdir, summary, recorder


def _reference_probe():
  x, y, _ = data.probe_set(SYNTH, "train", PER_CLASS, seed=0)
  return (x.astype(np.float64) - MEAN) / STD, y


def test_probe_identical_across_checkpoints(scored):
  _, summary, recorder = scored
  assert summary["scored"] == 4 and len(recorder.calls) == 4
  ref_x, ref_y = _reference_probe()
  assert np.bincount(ref_y).tolist() == [PER_CLASS] * 3
  for inputs, _ in recorder.calls:
    np.testing.assert_array_equal(inputs, recorder.calls[0][0])
    np.testing.assert_allclose(inputs, ref_x, rtol=1e-6, atol=1e-6)
  assert sorted(nc for _, nc in recorder.calls) == [5, 5, 10, 10]  # both source groups


def test_stored_scores_equal_direct_recomputation(scored):
  workdir, _, _ = scored
  df = results.load(workdir, "scores")
  ref_x, ref_y = _reference_probe()
  x = ref_x.astype(np.float32)
  expected_index = {0: 0, 3: 2, 10: 3}  # positions in the schedule 0, 1, 3, 10, 30, ...
  for source, seed, step in ZOO:
    mine = df[(df.source == source) & (df.seed == seed) & (df.step == step)]
    got = dict(zip(zip(mine.layer, mine.score, strict=True), mine.value, strict=True))
    assert len(got) == len(FEATURE_SCORES) + 4  # + leep, nce, checkpoint_index, param_count
    assert set(mine.target) == {SYNTH} and set(mine.probe) == {"train"}
    path = checkpointing.checkpoint_path(workdir, source, "cnn_tiny", seed, step)
    params = checkpointing.restore(path)
    graphdef, _, _ = functional.abstract_init("cnn_tiny", num_classes=data.get(source).num_classes)
    acts = extract.extract_one(graphdef, params, {}, x, taps=("pool2", "logits"))
    feats = acts["pool2"]
    want = scores.compute(feats, ref_y, num_classes=3, names=FEATURE_SCORES)
    for name in FEATURE_SCORES:
      if regimes.undefined_reason(name, n=len(ref_y), d=feats.shape[-1]):
        continue  # undefined there (the H-score is C - 1 whatever the features): see below
      np.testing.assert_allclose(got[("pool2", name)], float(want[name]), rtol=2e-3, atol=1e-5)
    # Independent float64 check of one score: SS = within-class / total sum of squares.
    f = feats.astype(np.float64)
    ssw = sum(((f[ref_y == c] - f[ref_y == c].mean(0)) ** 2).sum() for c in range(3))
    np.testing.assert_allclose(got[("pool2", "sum_of_squares")], ssw / ((f - f.mean(0)) ** 2).sum(),
                               rtol=1e-4)  # fmt: skip
    logits = acts["logits"].astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    want = scores.compute(None, ref_y, num_classes=3, names=["leep", "nce"], source_probs=probs)
    for name in ("leep", "nce"):
      np.testing.assert_allclose(got[("-", name)], float(want[name]), rtol=1e-4, atol=1e-6)
    assert got[("-", "checkpoint_index")] == expected_index[step]
    assert got[("-", "param_count")] == sum(np.asarray(v).size for v in _leaves(params))


def test_h_score_is_stored_undefined_with_its_reason_where_n_does_not_exceed_d(scored):
  # 30 probe samples, pool2 of cnn_tiny has more dimensions: the H-score is C - 1 = 2 whatever
  # the features, so the job stores no value, the reason instead, and the analysis says so.
  workdir, _, _ = scored
  df = results.load(workdir, "scores")
  h = df[(df.score == "h_score") & (df.layer == "pool2")]
  assert len(h) == len(ZOO) and h["value"].isna().all()
  assert all(json.loads(e)["error"].startswith("undefined: N - 1 = 29 <= D = ") for e in h.extra)
  assert df[(df.score == "h_score_shrinkage")]["value"].notna().all()
  note, parc = tables.undefined_notes(df)
  assert note.startswith("h_score is undefined on 4 stored values (layers pool2): N - 1 = 29")
  # PARC's standardised PCA coordinates are the whitened data where N - 1 <= min(32, D)
  assert parc.startswith("parc is undefined on 4 stored values (layers pool2): N - 1 = 29")


def _leaves(tree):
  if isinstance(tree, dict):
    for v in tree.values():
      yield from _leaves(v)
  else:
    yield tree


def test_rerun_skips_finished_checkpoints(scored, monkeypatch):
  workdir, _, _ = scored
  before = results.load(workdir, "scores")
  recorder = _Recorder()
  monkeypatch.setattr(extract, "extract", recorder)
  summary = run_job(score_job,
    workdir=workdir, target=SYNTH, probe_per_class=PER_CLASS, layers=("pool2",),
    show_progress=False,
  )  # fmt: skip
  assert summary["skipped"] == 4 and summary["scored"] == 0 and recorder.calls == []
  after = results.load(workdir, "scores")
  np.testing.assert_array_equal(before["created_at"], after["created_at"])
  # A different probe under the same probe name is refused, not silently mixed in.
  with pytest.raises(ValueError, match="probe"):
    run_job(score_job, workdir=workdir, target=SYNTH, probe_per_class=5, layers=("pool2",),
                  show_progress=False)  # fmt: skip


def test_failing_score_is_null_with_error_and_new_layers_recompute(tmp_path, monkeypatch):
  register_synth()
  make_zoo(tmp_path, [("mnist", 0, 0), ("mnist", 0, 1)], zero=[("mnist", 0, 1)])
  kw = dict(workdir=tmp_path, target=SYNTH, probe_per_class=PER_CLASS, show_progress=False)
  run_job(score_job, **kw, layers=("pool2",), scores=["rsa", "sum_of_squares"])
  df = results.load(tmp_path, "scores").set_index(["step", "score"])
  # All-zero params: every pool2 row is constant, so RSA is undefined -> NULL with the reason.
  assert np.isnan(df.loc[(1, "rsa"), "value"])
  assert "constant" in json.loads(df.loc[(1, "rsa"), "extra"])["error"]
  assert df.loc[(1, "sum_of_squares"), "value"] == 0.0  # SS = 0 when TSS = 0 (REFERENCE.md)
  assert np.isfinite(df.loc[(0, "rsa"), "value"])
  # Asking for a layer the markers do not cover recomputes; the marker then covers both.
  recorder = _Recorder()
  monkeypatch.setattr(extract, "extract", recorder)
  summary = run_job(score_job, **kw, layers=("pool1",), scores=["sum_of_squares"])
  assert summary["scored"] == 2 and len(recorder.calls) == 1
  df = results.load(tmp_path, "scores")
  assert set(df.layer) == {"pool1", "pool2"}
  done = results.load(tmp_path, "done")
  assert all(json.loads(e)["layers"] == ["pool1", "pool2"] for e in done.extra)


_CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
import score_job_test as t
from jtransfer.store import results
from jtransfer.jobs import score as score_job
from stage_calls import run_job
t.register_synth()
orig, count = results.Store.add_rows, [0]
def add_rows(self, table, rows, **kw):
  n = orig(self, table, rows, **kw)
  if table == "scores":
    count[0] += 1
    if count[0] == 3:  # inside the third checkpoint's transaction, before its done marker
      print("IN_TXN", flush=True)
      time.sleep(120)
  return n
results.Store.add_rows = add_rows
run_job(score_job, workdir={workdir!r}, **t.KILL_KW)
print("FINISHED", flush=True)
"""

KILL_KW = dict(
  target=SYNTH, probe_per_class=PER_CLASS, layers=("pool2",), memory_budget_bytes=1,
  scores=["rsa", "leep", "checkpoint_index"], show_progress=False,
)  # fmt: skip


@pytest.mark.slow  # SIGKILLs a subprocess
def test_sigkill_mid_job_then_resume(tmp_path, monkeypatch):
  register_synth()
  make_zoo(tmp_path, ZOO)
  script = tmp_path / "child.py"
  script.write_text(_CHILD.format(tests=str(pathlib.Path(__file__).parent), workdir=str(tmp_path)))
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JTRANSFER_QUIET": "1"}
  proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
  try:
    for line in proc.stdout:
      if line.strip() == "IN_TXN":
        break
    else:
      pytest.fail("the child finished without reaching the third checkpoint")
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.kill()
    proc.communicate(timeout=60)  # reaps it and closes the pipe
  assert proc.returncode == -signal.SIGKILL

  scores_df = results.load(tmp_path, "scores")
  done = results.load(tmp_path, "done")
  assert len(done) == 2  # two checkpoints committed; the third's transaction was rolled back
  keys = {tuple(json.loads(k)[:4]) for k in done.key}
  cols = (scores_df.source, scores_df.arch, scores_df.seed, scores_df.step)
  assert set(zip(*cols, strict=True)) == keys
  assert scores_df.groupby(["source", "seed", "step"]).size().tolist() == [3, 3]

  recorder = _Recorder()
  monkeypatch.setattr(extract, "extract", recorder)
  summary = run_job(score_job, workdir=tmp_path, **KILL_KW)
  assert summary["skipped"] == 2 and summary["scored"] == 2 and len(recorder.calls) == 2
  scores_df = results.load(tmp_path, "scores")
  assert len(results.load(tmp_path, "done")) == 4
  assert scores_df.groupby(["source", "seed", "step"]).size().tolist() == [3, 3, 3, 3]
  assert scores_df.value.notna().all()


def test_explicit_checkpoint_dirs_read_their_metadata(tmp_path):
  make_zoo(tmp_path, [("mnist", 2, 3), ("mnist_split_0_4", 1, 0)])
  paths = [checkpointing.checkpoint_path(tmp_path, s, "cnn_tiny", seed, st) for s, seed, st in
           [("mnist_split_0_4", 1, 0), ("mnist", 2, 3)]]  # fmt: skip
  got = zoo.select(tmp_path, [str(p) for p in paths])
  assert [(c.source, c.arch, c.seed, c.step, c.epoch) for c in got] == [
    ("mnist", "cnn_tiny", 2, 3, 0.3),
    ("mnist_split_0_4", "cnn_tiny", 1, 0, 0.0),
  ]
  from_table = zoo.select(tmp_path)
  assert [c.path for c in from_table] == [c.path for c in got]
  with pytest.raises(ValueError, match="missing or incomplete"):
    zoo.select(tmp_path, [{"source": "mnist", "arch": "cnn", "seed": 0, "step": 1,
                           "path": str(tmp_path / "nope")}])  # fmt: skip
  with pytest.raises(ValueError, match="unknown scores"):
    score_job.select_scores(["rsa", "acc"])


def test_config_is_checked_before_any_work(tmp_path):
  register_synth()
  make_zoo(tmp_path, [("mnist", 0, 0)])
  before = sorted(p.name for p in tmp_path.iterdir())
  kw = dict(workdir=tmp_path, target=SYNTH, show_progress=False)
  with pytest.raises(ValueError, match="unknown parallel 'pmap'"):
    run_job(score_job, **kw, parallel="pmap")
  with pytest.raises(ValueError, match="checkpoints is empty"):
    run_job(score_job, **kw, checkpoints=[])
  with pytest.raises(ValueError, match=r"score_options given for scores not requested: \['rsa'\]"):
    run_job(score_job, **kw, scores="leep", score_options={"rsa": {}})
  after = sorted(p.name for p in tmp_path.iterdir())
  assert after == before  # checked before the job takes its lock: no log, no config record
  config = score_job.ScoreConfig(target=SYNTH, scores=("leep", "param_count"))
  assert config.score_names() == ([], ["leep"], ["param_count"])


def test_a_batch_norm_checkpoint_without_its_statistics_is_an_error(tmp_path):
  """Scoring or fine-tuning it on fresh statistics would use another model than the one
  trained: both refuse, naming the checkpoint."""
  import types

  from jtransfer.train import transfer

  register_synth()
  kwargs = {"image_size": 28, "in_channels": 1}
  _, params, rest = functional.init("resnet_tiny", num_classes=3, seed=0, **kwargs)
  assert jax.tree.leaves(rest)  # the model has batch-norm statistics ...
  entry = zoo.Entry(source=SYNTH, arch="resnet_tiny", seed=0, step=0, num_classes=3,
                    model_kwargs=kwargs, index=0, epoch=0.0)  # fmt: skip
  written = zoo.write_entry(tmp_path, entry, jax.tree.map(np.asarray, params))  # ... not saved
  with pytest.raises(ValueError, match="batch-norm statistics that checkpoints .* do not store"):
    run_job(score_job, workdir=tmp_path, target=SYNTH, probe_per_class=PER_CLASS,
            layers=("pool",), show_progress=False)  # fmt: skip
  member = types.SimpleNamespace(path=written.path)
  with pytest.raises(ValueError, match="does not store the batch-norm statistics"):
    transfer._from_checkpoint(transfer.Restored(tmp_path), member, params, rest)
