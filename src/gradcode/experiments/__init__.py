"""Experiments: reproductions of published results and declarative studies."""
