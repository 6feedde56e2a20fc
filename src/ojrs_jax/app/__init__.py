"""The Hydra app layer between the library and the commands: strict configs, one-line errors."""
