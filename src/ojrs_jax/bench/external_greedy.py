"""An offloading scheduler as an external program, the kind `ojrs-bench run --command` scores.

    ojrs-bench run paper --command "python -m ojrs_jax.bench.external_greedy {in} {out}"

It stands for a scheduler written elsewhere (PyTorch, MATLAB, C): it imports nothing of ojrs-jax.

It reads the problems of one cell from {in} (an .npz: gain, h, data_bits, cycles, weights,
f_mec, ... with a leading batch axis B, and the constants such as f_local) and writes the
decisions `a` (B, N) to {out}: 0 runs a task locally, j offloads it to MEC j. This one is
Greedy of the paper's Sec. V.D in plain NumPy: every UE picks its nearest MEC (the largest
large-scale gain), then a MEC that would host more than floor(F_MEC / F_L) tasks sends the
extra ones home, the largest tasks first.
"""

import sys

import numpy as np


def main(src: str, out: str) -> None:
    """Greedy for every problem of `src`, written to `out` as `a` (B, N)."""
    with np.load(src) as z:
        gain, cycles, f_mec, f_local = z["gain"], z["cycles"], z["f_mec"], float(z["f_local"])
    a = np.argmax(gain, axis=2) + 1  # (B, N): the nearest MEC of every UE
    for b in range(a.shape[0]):
        for j in range(1, f_mec.shape[1] + 1):
            on_j = np.flatnonzero(a[b] == j)
            keep = int(np.floor(f_mec[b, j - 1] / f_local))
            by_size = on_j[np.lexsort((on_j, cycles[b, on_j]))]  # smallest task first
            a[b, by_size[keep:]] = 0
    np.savez(out, a=a.astype(np.int32))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
