"""Workflows: one module per command, composing the library parts."""
