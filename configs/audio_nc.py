r"""The neural-collapse paper's comparison on FSDD: NC score vs LEEP vs LogME, head-only vs full
fine-tuning, accuracy and (binary target) AUROC.

  python launch/sweep.py --config configs/audio_nc.py:quick --workdir runs/audio_nc_quick

The sweep pre-trains six source models of the paper's three architectures (`audio_cnn`,
`audio_crnn`, `dcase_cnn`: each on its own FSDD source tasks, as the paper's CNN-speech,
CNN-music, CRNN and DCASE-ASC models each had their own), scores every checkpoint and fine-tunes
each model's LAST checkpoint on two targets of the unseen speakers 4-5 with a new classifier
whose init is shared by every model (the paper): `head` (backbone frozen) and `full`. On the
binary target `fsdd_zero_vs_rest_spk45` ("zero" vs any other digit, 1:9 like a screening task)
the fine-tune job also stores the AUROC of the positive class at every evaluation. After the
standard report, the sweep's evaluate stage runs the `neural_collapse` study (`c.studies`,
`jtransfer.studies.neural_collapse.report`), which writes
`nc_comparison.md` / `.csv`: Pearson r of NC score (lower is better), LEEP and LogME with final
accuracy (both targets) and final AUROC (binary target), per mode and layer, plus the
`embedding` layer (the input of each model's classifier: fc1 for audio_cnn/crnn, the global pool
for dcase_cnn), the paper's choice.

Checkpoint selection (the paper: "model checkpoints are used to find the best-performing model
parameters on the validation sets"; its cough data is split 70/15/15). The fine-tune job holds
out a class-stratified 15% of each target's train split as validation (`val_fraction`, a fixed
split shared by every model) and evaluates it with the test split at every log-spaced
fine-tune step. `nc_comparison.md` reports each correlation twice: with the FINAL step's test
metric, and with the test metric of the step that is best on validation (accuracy; AUROC for
the AUROC comparison): the `final` and `val_selected` checkpoints.

Paper numbers for comparison (COVID-19 coughs, |r| with AUROC, head / full): LEEP 0.68 / 0.61,
LogME 0.84 / 0.83, NC 0.86 / 0.85. With six models (seed means) any |r| below about 0.81 is not
significant at 5%: read the quick variant as a pipeline check.

Quick: slimmed models (conv widths 16/32/64, dcase 8/16/32/64), 2 seeds, 150 pre-train steps,
60 fine-tune steps, Adam 1e-3; 11.9 min end to end on the 2-core CPU (BENCHMARKS.md). Full: the
paper's sizes and settings (Adam 1e-4, batch 32), 3 fine-tune seeds (the paper: 10), 6,000
pre-train steps (~100 epochs of the 1,800-clip sources) and 100 epochs of fine-tuning.
"""

import ml_collections
from ml_collections.config_dict import placeholder

from jtransfer.data import audio_tasks  # noqa: F401  (registers the extra FSDD tasks)
from jtransfer.models import audio  # noqa: F401  (registers the audio models)
from jtransfer.studies import neural_collapse

SOURCES = (
  ("fsdd_digit_spk0123", "audio_cnn"),
  ("fsdd_speaker_spk0123", "audio_cnn"),
  ("fsdd_digit_0_4_spk0123", "audio_crnn"),
  ("fsdd_noise", "audio_crnn"),
  ("fsdd_digit_spk0123_n45", "dcase_cnn"),
  ("fsdd_digit_spk0123_n10", "dcase_cnn"),
)
TARGETS = ("fsdd_digit_spk45", "fsdd_zero_vs_rest_spk45")
BINARY_TARGETS = neural_collapse.AUROC_TARGETS  # the study's AUROC comparison
QUICK_MODELS = {
  "audio_cnn": {"widths": [16, 32, 64], "fc": 64},
  "audio_crnn": {"widths": [16, 32, 64], "gru": 32, "fc": 64},
  "dcase_cnn": {"widths": [8, 16, 32, 64]},
}
SCORES = ("nc_score", "nc_score_eq2", "leep", "logme", "knn_accuracy", "param_count")


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in ("full", "quick"):
    raise ValueError(f"unknown variant {arg!r}; valid: full, quick")
  quick = arg == "quick"
  steps = 150 if quick else 6000
  sources = [
    {"name": name, "arch": arch, "model_kwargs": dict(QUICK_MODELS[arch]) if quick else {}}
    for name, arch in SOURCES
  ]
  lr = 1e-3 if quick else 1e-4
  pretrain = dict(
    num_seeds=2 if quick else 5,
    batch_size=32,
    duration={"steps": steps},
    optimizer="adam",
    optimizer_kwargs={"learning_rate": lr},
    eval_train_examples=500,
    eval_batch_size=500,
  )
  score = dict(
    targets=list(TARGETS),
    probe_per_class=20 if quick else 50,
    heldout_probe=not quick,
    scores=list(SCORES),
    layers=placeholder(tuple),  # None: every tap of each architecture
  )
  finetune = dict(
    targets=list(TARGETS),
    modes=["head", "full"],
    ft_seeds=[0] if quick else [0, 1, 2],
    steps=[steps],  # the finished models only, as the paper
    duration={"steps": 60} if quick else {"epochs": 100},
    batch_size=32,
    optimizer="adam",
    optimizer_kwargs={"learning_rate": lr},
    eval_batch_size=500,
    val_fraction=0.15,  # the paper's 15% validation split, for checkpoint selection
  )
  evaluate = dict(keep_seeds=False, n_boot=200 if quick else 1000, focus_layer="block3")
  c = ml_collections.ConfigDict()
  c.sources, c.pretrain, c.score, c.finetune, c.evaluate = (
    sources,
    pretrain,
    score,
    finetune,
    evaluate,
  )
  c.studies = ("neural_collapse",)
  return c
