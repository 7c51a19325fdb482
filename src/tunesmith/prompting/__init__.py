"""Prompting baselines: the pre-trained model with the task's instruction, zero- or few-shot."""
