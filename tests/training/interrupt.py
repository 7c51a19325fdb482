"""A training process killed at a chosen point, for the resume tests."""

import contextlib

import pytest

from tunesmith.training import loop as loop_module


@contextlib.contextmanager
def dies_after_epoch(monkeypatch, epoch: int = 1):
    """`train()` inside this block dies (KeyboardInterrupt, as from a kill) right after writing
    the checkpoint of `epoch`; the block expects that death."""
    real_save = loop_module.save_checkpoint

    def save_then_die(run, at, *args, **kwargs):
        path = real_save(run, at, *args, **kwargs)
        if at == epoch:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_die)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        monkeypatch.setattr(loop_module, "save_checkpoint", real_save)
