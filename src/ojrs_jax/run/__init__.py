"""Running and evaluating: the host loop, the run directory, the scheduler, NRR (Sec. V.B).

- `build`: a run's typed settings, scenario and trainer from one config; SAE pretraining;
- `loop`: the host loop over jitted chunks (progress, checkpoints, the non-finite stop);
- `checkpoint`, `rundir`: the run directory's files, its lock and its one validated loader;
- `train`: one training run written to a run directory (`ojrs-train`);
- `scheduler`: a trained run as a scheduler (decide, allocate);
- `inputs`: channels and deployments handed to a scheduler, read and checked;
- `evaluation`: NRR against the certified optimum, references, stability;
- `plots`, `tracking`: training figures and the optional TensorBoard writer.
"""
