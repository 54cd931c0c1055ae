"""training-agent: runs fine-tuning jobs from a web platform on this machine's GPUs."""

__version__ = "0.2.0"
