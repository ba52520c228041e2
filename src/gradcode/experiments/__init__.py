"""Reproductions of published experiments: each module has ``run(out_dir, trials, rng)``."""
