"""The offloading task as gymnax environments (paper Sec. III and the MDP of Sec. IV.C)."""
