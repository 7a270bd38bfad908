"""Reward functions: the interface every scorer shares (``base``), the priors, the networks,
the exported artifact, and references (``true``, ``prior:<name>``, a run) resolved to one.

Submodules are imported explicitly, so loading a reward imports only what it needs.
"""
