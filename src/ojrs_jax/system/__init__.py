"""The MEC system model and its resource-allocation sub-problem (paper Sec. III, eqs. 1-14).

- `scenario`: a deployment of N UEs and M MECs, Rayleigh channels, rates (eqs. 1-3);
- `p2`: P2 for a fixed decision, closed form and jaxopt projected gradient, L(a) (eqs. 5-13);
- `exact`: the certified optimum of P1 as a convex MIQP in SCIP;
- `deployment`: deployment distributions (fixed, random, mobile) padded with masks, and one
  epoch's `Problem`;
- `certify`: the certified evaluation, decisions against SCIP's optimum (NRR, Sec. V.B).
"""
