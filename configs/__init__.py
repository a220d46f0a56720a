"""Model profiles and example configs; installed as ``spbench.configs``."""
