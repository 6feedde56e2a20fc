"""The DRL agent: policies, replay and Algorithm 3 (paper Sec. IV.C and IV.E, eqs. 24-25, 31-32).

- `config`: `TrainConfig`, the settings of Algorithm 3 for every policy;
- `agents`: what each policy observes, how it acts and learns;
- `policy`: the paper's policy DNN, the per-UE policy, eq. 25's loss, the deciding form;
- `feature_policy`: one network of per-link latency features for any N and M;
- `replay`: 2p-ER (preserved and prioritised) and the uniform FIFO buffer;
- `trainer`: Algorithm 3 as a `lax.scan` over blocks of phi epochs.
"""
