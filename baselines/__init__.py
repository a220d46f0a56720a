"""Baseline methods. They plug into spbench through the `spbench.methods` entry point, the same
way a user's own method package does. Installed as ``spbench_baselines``."""
