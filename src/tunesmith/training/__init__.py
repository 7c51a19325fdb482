"""Fine-tuning: one explicit loop (`loop.train`) shared by LoRA and full fine-tuning."""

from tunesmith.training.loop import TrainResult, train

__all__ = ["TrainResult", "train"]
