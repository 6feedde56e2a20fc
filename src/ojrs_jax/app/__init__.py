"""The Hydra app layer between the library and the commands (no equation).

- `hydra`: `hydra.main` made strict (unknown settings, wrong types), one-line errors with exit
  codes, the conversion of a `DictConfig` to the plain dicts the library takes;
- `compose`: a command's config from Python (`compose_config`), and `train_from_config`.
"""
