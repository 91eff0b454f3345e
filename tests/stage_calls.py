"""A stage job called from one flat set of keyword arguments: its config's fields and the
runtime's (`job.build` splits them), e.g. `run_job(pretrain, workdir=w, source="mnist")`."""

from jtransfer.jobs import context as job
from jtransfer.jobs import finetune, pretrain
from jtransfer.jobs import score as score_job
from jtransfer.train import finetune_plan

_CONFIG = {
  pretrain: pretrain.PretrainConfig,
  score_job: score_job.ScoreConfig,
  finetune: finetune_plan.FinetuneConfig,
}


def run_job(module, **kwargs):
  """`module.run(config, runtime)` with both built from `kwargs`."""
  config, runtime = job.build(_CONFIG[module], kwargs)
  return module.run(config, runtime)
