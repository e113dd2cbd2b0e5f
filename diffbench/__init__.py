"""diffbench: standard benchmarks of diffusion models."""

__version__ = "0.1.0"
