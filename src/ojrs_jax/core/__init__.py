"""The ground floor: settings and their validators, atomic file output, progress, the XLA cache.

Nothing here knows the paper's model: every other subpackage builds on these modules.

- `settings`: `ConfigError`, the validators every typed config uses, the renamed settings;
- `io`: atomic writes of text, bytes, CSV and npz, refusing links and devices;
- `progress`: progress bars and the log lines of long phases;
- `cache`: JAX's persistent compilation cache for the commands;
- `ring`: the one FIFO ring buffer (slot, size, uniform sampling).
"""
