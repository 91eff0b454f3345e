"""Fine-tuning from the streamed input pipeline equals fine-tuning from the in-memory target."""

import shutil

import jax
import numpy as np
import pytest
from stage_calls import run_job

from jtransfer.jobs import finetune
from jtransfer.models import functional
from jtransfer.store import results
from jtransfer.store import zoo as zoo_lib

ARCH = "cnn_tiny"
# 320 training images, 10% held out for validation: 288 at batch 32 = 9 steps per epoch, so
# 14 steps cross the epoch boundary (evaluations at 0, 1, 3, 9, 10, 14).
KW = dict(
  target="mnist",
  modes=("full", "head"),
  ft_seeds=(0, 1),
  batch_size=32,
  train_examples=320,
  val_fraction=0.1,
  eval_examples=64,
  eval_train_examples=64,
  eval_batch_size=64,
  duration={"steps": 14},
  optimizer="adam",
  optimizer_kwargs={"learning_rate": 1e-2},
  baselines=False,
  show_progress=False,
)
METRICS = ["test_acc", "test_loss", "train_acc", "train_loss", "val_acc", "val_loss"]
KEYS = ["source", "seed", "step", "mode", "ft_seed", "ft_step"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
  """Two checkpoints (seeds 0 and 1, moved away from their inits), as pre-training writes them."""
  workdir = tmp_path_factory.mktemp("zoo")
  store = results.Store(workdir)
  rng = np.random.default_rng(0)
  for seed in (0, 1):
    _, params, _ = functional.init(ARCH, num_classes=10, seed=seed)
    params = jax.tree.map(lambda a: np.asarray(a) + 0.05 * rng.normal(size=a.shape), params)
    params = jax.tree.map(lambda a: a.astype(np.float32), params)
    # Step 7 of a run of 10 steps per epoch: place 3 of the schedule 0, 1, 3, 10, ...
    entry = zoo_lib.Entry(source="mnist", arch=ARCH, seed=seed, step=7, num_classes=10,
                      model_kwargs={}, index=3, epoch=0.7)  # fmt: skip
    store.add_checkpoint(**zoo_lib.write_entry(workdir, entry, params).index_row(workdir))
  store.close()
  return workdir


def _run(zoo, tmp_path, name, data_dir, **kw):
  workdir = tmp_path / name
  shutil.copytree(zoo, workdir)
  summary = run_job(finetune, workdir=workdir, data_dir=data_dir, **{**KW, **kw})
  rows = results.load(workdir, "finetune").sort_values(KEYS).reset_index(drop=True)
  return summary, rows


def test_streamed_curves_equal_the_in_memory_curves(zoo, tmp_path, data_dir):
  mem, rows_mem = _run(zoo, tmp_path, "memory", data_dir)
  st, rows_st = _run(zoo, tmp_path, "stream", data_dir, input_pipeline="stream")
  assert st["eval_steps"] == mem["eval_steps"] == [0, 1, 3, 9, 10, 14]
  assert st["groups"] == mem["groups"] == 4  # 2 ft_seeds x 2 freezings, 2 checkpoints each
  # 2 checkpoints x 2 modes x 2 ft_seeds x 6 evaluations, bit for bit.
  assert len(rows_st) == len(rows_mem) == 48
  assert rows_st[KEYS].equals(rows_mem[KEYS])
  np.testing.assert_array_equal(rows_st[METRICS].to_numpy(), rows_mem[METRICS].to_numpy())
  # The runs trained and the ft_seeds differ (another data order, another head).
  final = rows_st[(rows_st.ft_step == 14) & (rows_st["mode"] == "full")]
  start = rows_st[(rows_st.ft_step == 0) & (rows_st["mode"] == "full")]
  assert (final.train_loss.to_numpy() < start.train_loss.to_numpy()).all()
  by_seed = final.set_index(["seed", "ft_seed"]).test_loss
  assert by_seed[0, 0] != by_seed[0, 1]


@pytest.mark.parametrize(
  ("kw", "message"),
  [
    ({"input_pipeline": "disk"}, "unknown input_pipeline 'disk'; valid: memory, stream"),
    ({"augment": True}, "augment=True needs input_pipeline='stream'"),
    (
      {"augment": True, "input_pipeline": "stream"},
      "augment=True: dataset 'mnist' declares no augmentation",
    ),
  ],
)
def test_bad_combinations_fail_in_one_line_before_any_work(tmp_path, data_dir, kw, message):
  with pytest.raises(ValueError, match=message) as err:
    run_job(finetune, workdir=tmp_path, target="mnist", data_dir=data_dir, **kw)
  assert "\n" not in str(err.value)
  assert list(tmp_path.iterdir()) == []  # checked before the job touches the workdir


def test_augmented_target_changes_the_training_not_the_start(tmp_path, data_dir):
  # CIFAR-10 declares crops and flips; the scratch baseline of a CIFAR-shaped tiny CNN. The
  # start (step 0) is the same model; every later evaluation differs from the plain stream's.
  kw = dict(
    KW,
    target="cifar10",
    modes=("full",),
    ft_seeds=(0,),
    val_fraction=None,
    train_examples=128,
    duration={"steps": 3},
    baselines=True,
    baseline_archs=(ARCH,),
    model_kwargs={"image_size": 32, "in_channels": 3},
    input_pipeline="stream",
    data_dir=data_dir,
  )
  run_job(finetune, workdir=tmp_path / "aug", augment=True, **kw)
  run_job(finetune, workdir=tmp_path / "plain", **kw)
  aug, plain = (
    results.load(tmp_path / name, "finetune").sort_values(KEYS).reset_index(drop=True)
    for name in ("aug", "plain")
  )
  assert aug[KEYS].equals(plain[KEYS]) and set(aug.ft_step) == {0, 1, 3}
  cols = ["test_loss", "train_loss"]
  at0, later = aug.ft_step == 0, aug.ft_step > 0
  np.testing.assert_array_equal(aug[at0][cols].to_numpy(), plain[at0][cols].to_numpy())
  assert (aug[later].train_loss.to_numpy() != plain[later].train_loss.to_numpy()).all()
