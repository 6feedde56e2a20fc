"""The commands (`ojrs-*`): each parses its arguments (Hydra or argparse), calls one function of
the floors below and prints; bad input ends in one `error:` line and exit code 2."""
