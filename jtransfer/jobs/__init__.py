"""Jobs: one module per stage (pretrain, score, finetune), the sweep that runs them in
order, the job context they share, and the workdir migrate command."""
