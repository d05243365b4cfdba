"""Limner: give a content catalogue its images."""

__version__ = "0.1.0"
