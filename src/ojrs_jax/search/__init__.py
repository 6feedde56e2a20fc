"""Action search and the baselines (paper Sec. IV.D and V.D, Algorithm 2, eqs. 26-30).

- `asa`: adaptive simulated annealing with channel-guided mutation and vmapped neighbours,
  plain SA, eq. 30's adaptive iteration count, best-response passes;
- `pso`: discrete particle swarm, the paper's "optimal" reference;
- `baselines`: Random, Greedy with the capacity rule, exhaustive search.
"""
