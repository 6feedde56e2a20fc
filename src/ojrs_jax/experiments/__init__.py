"""The paper's studies (Sec. V), each a function from a config to results and files on disk.

`train_run` (one `ojrs-train` run), `baselines` (Table II's rules), `sae_study` (Figs. 3-6),
`fig7` (ASA vs SA) and `reproduce` (the jobs of `ojrs-reproduce`: Tables II-III, Figs. 3-10).
They build on the library modules of `ojrs_jax` and never import `ojrs_jax.cli`, which parses the
command line, calls one of these and prints.
"""
