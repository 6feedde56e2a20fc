"""Hydra configuration tree of ojrs-jax, installed as the package `ojrs_jax.conf`."""
