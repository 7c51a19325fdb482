"""Data sets shipped with tunesmith for its demo (see README.md in this folder)."""

from pathlib import Path

HERE = Path(__file__).parent
SUPPORT_TICKETS = HERE / "support_tickets.jsonl"
"""Customer-support messages of a fictional company, labelled with its 8 support queues."""
SUPPORT_TICKETS_LABELS = HERE / "support_tickets.labels.json"
"""The company's name and each queue's definition."""

__all__ = ["SUPPORT_TICKETS", "SUPPORT_TICKETS_LABELS"]
