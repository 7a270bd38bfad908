"""The Meta-World v3 observation and action layout (goal observable): sizes, names, slices.

Observations are 39-d: hand xyz and gripper opening, two objects (position and quaternion),
the previous frame's copy of those, and the goal; actions are 4-d (hand delta, grip).
"""

from __future__ import annotations

STATE_DIM = 39
ACTION_DIM = 4

HAND = slice(0, 3)
OBJECT = slice(4, 7)
GOAL = slice(36, 39)

_OBJECT_PARTS = ("x", "y", "z", "qx", "qy", "qz", "qw")
_HAND = ["hand_x", "hand_y", "hand_z", "gripper"]
_OBJECTS = [f"obj{i}_{c}" for i in (1, 2) for c in _OBJECT_PARTS]
STATE_NAMES = (_HAND + _OBJECTS + [f"prev_{n}" for n in _HAND + _OBJECTS]
               + ["goal_x", "goal_y", "goal_z"])
ACTION_NAMES = ["dx", "dy", "dz", "grip"]
