"""tunesmith: prompt it or fine-tune it? Measure both on your own data, then do the winning thing."""

from tunesmith.errors import ModelError, TunesmithError, UnusableInputError

__version__ = "0.1.0"

__all__ = ["ModelError", "TunesmithError", "UnusableInputError", "__version__"]
