"""The offloading task as gymnax environments (paper Sec. III and the MDP of Sec. IV.C).

- `base`: gymnax 1.0's interface (`reset`, `step` with auto-reset, spaces) and what Algorithm 3
  draws from a task (`rollout`: the problems of the next epochs);
- `fixed`: the paper's deployment under Rayleigh fading, with its weight change (Sec. V.E);
- `distribution`: random or moving deployments of any N and M, padded with masks.
"""
