"""The data stage: read every supported format, check it, count its tokens, prepare splits."""

from tunesmith.data.examples import Dataset, Entity, Example, Message
from tunesmith.data.formats import FORMATS, detect_format, read_dataset
from tunesmith.data.issues import Issue

__all__ = [
    "FORMATS", "Dataset", "Entity", "Example", "Issue", "Message", "detect_format", "read_dataset",
]
