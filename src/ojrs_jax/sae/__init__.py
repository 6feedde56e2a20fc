"""The related and regularised stacked autoencoder, 2r-SAE (paper Sec. IV.B, eqs. 15-23, Alg. 1).

- `channel_map`: the map h <-> SAE input x (linear, log, minmax) and reconstruction metrics;
- `model`: the autoencoder (flat or per UE) and eq. 23's loss;
- `train`: T_SAE Adam steps as one scan, or chunks of them up to a plateau;
- `incremental`: Algorithm 1, incremental learning with a memory and an online encoder;
- `metrics`: the three accuracy figures (WAPE, paper-style 1 - RMSE, decision fidelity).
"""
