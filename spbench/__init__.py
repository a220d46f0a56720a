"""spbench: a benchmark harness for pose-guided text-to-image generation."""

__version__ = "0.1.0"
