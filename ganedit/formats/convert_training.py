"""Converter entry for ganedit's own training checkpoints under any file name (the logic is in training_run)."""
from ganedit.formats.training_run import convert, detect

__all__ = ["convert", "detect"]
