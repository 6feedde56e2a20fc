"""The paper's studies (Sec. V) and the project's own, each from a typed config to results on disk.

- `baselines`: Table II's rules on sampled channels; `fig7`: ASA against plain SA;
- `sae_study`, `sae_outputs`: the SAE study of Figs. 3-6 and its files; `code_study`: the SAE
  code as the DRL state, offline;
- `reproduce`, `results`: the jobs of `ojrs-reproduce` (Tables II-III, Figs. 3-10) and their
  aggregation into tables and figures;
- `any_grid`, `tuned_beside`: a policy for any deployment scored cell by cell, along mobile
  walks and beside a per-deployment scheduler.
They build on the library and never import `ojrs_jax.cli`, which parses the command line,
calls one of these and prints.
"""
