"""Evaluation: the same code scores prompted base models and fine-tuned ones on a task."""
