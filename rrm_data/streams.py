"""The named random streams: every seeded numpy generator of the package, in one place.

A stream is ``default_rng([seed, STREAM, *more])``: one seed gives each consumer its own
independent generator, so adding draws in one place never shifts another's. The numbers
are part of the output (a collected dataset's bytes depend on them): never renumber one;
a new stream takes a new number.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """Streams of the package's seed (collection, training, the online loop)."""

    SEGMENTS = 1  # collect: segment starts in each episode (keyed by the episode's seed)
    PAIRS = 2  # collect: test episodes and which segments pair up
    TEACHER = 3  # collect: a teacher's labels (+ crc32 of its name, split number)
    VALIDATION = 4  # train-reward: the held-out validation episodes
    QUERIES = 5  # train-online: query selection
    ONLINE_TEACHER = 7  # train-online: the teacher's own randomness
    FEEDBACK_TEST = 11  # train-online: oracle test pairs of the feedback dataset


class CampaignStream(IntEnum):
    """Streams of an annotation campaign's seed (apart from the collection's seed)."""

    CALIBRATION = 1  # which train pairs are calibration items
    SIDES = 2  # which items an annotator sees swapped (+ the annotator's number)


def stream(seed: int, name: Stream | CampaignStream, *more: int) -> np.random.Generator:
    """The generator of stream ``name`` of ``seed`` (``more``: further keys within it)."""
    return np.random.default_rng([int(seed), int(name), *(int(m) for m in more)])
