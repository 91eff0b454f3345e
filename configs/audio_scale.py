r"""Audio source scale and ontology on FSDD: how the number of classes and of samples per class
of the pre-training data drive transfer to the digits of unseen speakers.

  python launch/sweep.py --config configs/audio_scale.py:quick --workdir runs/audio_scale_quick

It runs pre-train → score → fine-tune → evaluate (report as for every sweep), and the evaluate
stage then runs the `audio_scale` study (`c.studies`), which writes `scale.csv` and
`figures/scale_classes.png` / `scale_samples.png`: fine-tune log-AUC of each source's last
checkpoint (seed mean ± std) against the number of source classes and against samples per
class, with the NC score, LogME and LEEP (at `pool`) in panels beside it
(`jtransfer.studies.audio_scale`).

Sources (all on speakers 0-3; `jtransfer.data.audio_tasks`):
- class ladder (every train clip, 180 per class): `fsdd_digit_c2` (digits 0-1),
  `fsdd_digit_c5` (0-4), `fsdd_digit_c10` (0-9);
- sample ladder (all 10 digits): `fsdd_digit_spk0123_n10`, `fsdd_digit_spk0123_n45`, and
  `fsdd_digit_c10` as its top rung (180 per class: the same data, trained once);
- ontology: `fsdd_speaker_spk0123` (the same clips labelled by speaker, not by word) — in the
  report and `scale.csv`, not on the ladders' axes.
Target: `fsdd_digit_spk45`. The abstract's claims to look for: more classes and more samples
both help, and similarity of the source task to the target (digits vs speakers) matters more.
Note the class ladder keeps samples per class fixed, so its total data grows with the classes.
Training length comes from configs/audio_fsdd.py: the quick variant trains every source for the
same number of steps (equal compute; the 100-clip source sees ~48 epochs, the 1,800-clip one
~3), the full variant for the same number of epochs.
Quick: 13.9 min end to end on the 2-core CPU (BENCHMARKS.md, "Audio studies end to end").

  python launch/sweep.py --config configs/audio_scale.py:decide --workdir runs/audio_scale_decide
  python scripts/publish_audio_scale.py runs/audio_scale_decide   # -> docs/results/audio_scale

Decide: the quick zoo sized to decide the abstract's claims: 5 pre-training seeds per source,
300 pre-training steps (equal compute per source), and fine-tuning of each finished model only
(the last checkpoint) for 150 steps (≈ 5 epochs of the target) with 3 fine-tune seeds, scratch
and random-init baselines alike; final test accuracy and log-AUC as ground truth, intervals from
resampling pre-training seeds within each source (B = 2,000).
"""

import pathlib

import ml_collections

from jtransfer.cli import overrides as config_cli
from jtransfer.data import audio_tasks
from jtransfer.studies.audio_scale import LADDER, ONTOLOGY

DECIDE_STEPS = 300
# The zoo settings this study derives from, loaded by path (configs/ is no package).
audio_fsdd = config_cli.load_module(pathlib.Path(__file__).with_name("audio_fsdd.py"))


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  # The zoo settings of configs/audio_fsdd.py (model, optimiser, schedule, variants); only the
  # sources differ.
  c = audio_fsdd.get_config("quick" if arg == "decide" else arg)
  sources = [*LADDER, *ONTOLOGY]
  if arg == "tiny":  # two rungs on each ladder: 2 and 10 classes, 10 and 180 samples per class
    sources = [
      audio_tasks.class_ladder_name(2),
      audio_tasks.class_ladder_name(10),
      audio_tasks.sample_ladder_name(10),
    ]
  if arg == "decide":
    c.pretrain.num_seeds = 5
    c.pretrain.duration = {"steps": DECIDE_STEPS}
    c.finetune.steps = [DECIDE_STEPS]  # the finished models only
    c.finetune.ft_seeds = [0, 1, 2]
    c.finetune.duration = {"steps": 150}
    c.evaluate.n_boot = 2000
  c.sources = [{"name": name} for name in sources]
  c.studies = ("audio_scale",)
  return c
