"""A labelling campaign's store: one SQLite file, each answer committed before it is acknowledged.

SQLite in WAL mode with ``synchronous=FULL``: once ``answer`` returns, the label survives a
crash of the process or the machine. Every answer carries a client-made ``request_id``
(unique), so a client that lost the reply can send the same answer again and get the stored
row back instead of a second one; an annotator answers an item at most once.

Tokens are random and shown once; only their SHA-256 is stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANNOTATOR, ADMIN = "annotator", "admin"
CHOICES = ("left", "right", "equal", "skip")

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS annotators (
  name TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('annotator', 'admin')));
CREATE TABLE IF NOT EXISTS items (
  item_id INTEGER PRIMARY KEY, pair_index INTEGER NOT NULL,
  segment_a INTEGER NOT NULL, segment_b INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('query', 'calibration')),
  known REAL, oracle REAL);
CREATE TABLE IF NOT EXISTS queue (
  annotator TEXT NOT NULL REFERENCES annotators(name), position INTEGER NOT NULL,
  item_id INTEGER NOT NULL REFERENCES items(item_id), swap INTEGER NOT NULL,
  PRIMARY KEY (annotator, position), UNIQUE (annotator, item_id));
CREATE TABLE IF NOT EXISTS answers (
  answer_id INTEGER PRIMARY KEY, request_id TEXT NOT NULL UNIQUE,
  annotator TEXT NOT NULL, item_id INTEGER NOT NULL,
  choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'equal', 'skip')),
  label REAL, confidence INTEGER, seconds REAL NOT NULL, created REAL NOT NULL,
  UNIQUE (annotator, item_id));
"""


@dataclass(frozen=True)
class Item:
    """One comparison: a pair of segments, a calibration item's known label, the oracle's."""

    item_id: int
    pair_index: int
    segment_a: int
    segment_b: int
    kind: str
    known: float | None
    oracle: float | None


@dataclass(frozen=True)
class Answer:
    """What ``answer`` stored (or had stored for this request before)."""

    answer_id: int
    request_id: str
    annotator: str
    item_id: int
    choice: str
    label: float | None
    confidence: int | None
    seconds: float
    repeated: bool = False


class AnswerError(Exception):
    """An answer the store refuses; ``status`` is the HTTP status to reply with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def label_of(choice: str, swap: bool) -> float | None:
    """P(segment_a ≻ segment_b) from the side the annotator picked (None for a skip)."""
    if choice == "equal":
        return 0.5
    if choice == "skip":
        return None
    return float((choice == "left") != swap)


class Store:
    """The campaign database at ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- campaign set-up -------------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM settings")}

    def is_empty(self) -> bool:
        return self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0

    def create(self, items: Sequence[Item], queues: dict[str, list[tuple[int, bool]]],
               settings: dict[str, Any]) -> dict[str, str]:
        """Store items, annotators with their queues (item id, swap sides) and an admin, in one
        transaction; return the new tokens ``{name: token}`` (shown once, never stored)."""
        tokens = {name: secrets.token_urlsafe(24) for name in [*queues, ADMIN]}
        with self.transaction() as db:
            db.executemany("INSERT INTO settings VALUES (?, ?)",
                           [(k, json.dumps(v)) for k, v in settings.items()])
            db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(i.item_id, i.pair_index, i.segment_a, i.segment_b, i.kind, i.known,
                             i.oracle) for i in items])
            for name, token in tokens.items():
                db.execute("INSERT INTO annotators VALUES (?, ?, ?)",
                           (name, token_hash(token), ADMIN if name == ADMIN else ANNOTATOR))
            db.executemany("INSERT INTO queue VALUES (?, ?, ?, ?)",
                           [(name, position, item, int(swap))
                            for name, queue in queues.items()
                            for position, (item, swap) in enumerate(queue)])
        return tokens

    def annotators(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT name FROM annotators WHERE role = ? ORDER BY name", (ANNOTATOR,))]

    def items(self) -> dict[int, Item]:
        return {r[0]: Item(*r) for r in self.db.execute("SELECT * FROM items ORDER BY item_id")}

    # --- serving ---------------------------------------------------------------------------
    def who(self, token: str | None) -> tuple[str, str] | None:
        """(name, role) of a token's holder, or None."""
        if not token:
            return None
        row = self.db.execute("SELECT name, role FROM annotators WHERE token_sha256 = ?",
                              (token_hash(token),)).fetchone()
        return (row[0], row[1]) if row else None

    def pending(self, annotator: str, limit: int = 1) -> list[tuple[int, int, int, bool]]:
        """The next ``limit`` unanswered (item id, left segment, right segment, swap) of a queue."""
        rows = self.db.execute(
            "SELECT q.item_id, i.segment_a, i.segment_b, q.swap FROM queue q "
            "JOIN items i USING (item_id) WHERE q.annotator = ? AND NOT EXISTS "
            "(SELECT 1 FROM answers a WHERE a.annotator = q.annotator AND a.item_id = q.item_id)"
            " ORDER BY q.position LIMIT ?", (annotator, limit)).fetchall()
        return [(item, b, a, True) if swap else (item, a, b, False) for item, a, b, swap in rows]

    def progress(self, annotator: str) -> tuple[int, int]:
        """(answered, queued) items of an annotator."""
        done = self.db.execute("SELECT COUNT(*) FROM answers WHERE annotator = ?",
                               (annotator,)).fetchone()[0]
        total = self.db.execute("SELECT COUNT(*) FROM queue WHERE annotator = ?",
                                (annotator,)).fetchone()[0]
        return done, total

    def sides(self, annotator: str, item_id: int) -> tuple[int, int] | None:
        """(left segment, right segment) of an item in an annotator's queue, or None."""
        row = self.db.execute("SELECT i.segment_a, i.segment_b, q.swap FROM queue q JOIN items i "
                              "USING (item_id) WHERE q.annotator = ? AND q.item_id = ?",
                              (annotator, item_id)).fetchone()
        if row is None:
            return None
        a, b, swap = row
        return (b, a) if swap else (a, b)

    def answer(self, annotator: str, item_id: int, choice: str, confidence: int | None,
               seconds: float, request_id: str) -> Answer:
        """Store one answer durably; a repeated ``request_id`` returns the stored answer."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM answers WHERE request_id = ?",
                             (request_id,)).fetchone()
            if row is not None:
                stored = dataclasses.replace(Answer(*row[:8]), repeated=True)
                if (stored.annotator, stored.item_id, stored.choice) != (annotator, item_id,
                                                                         choice):
                    raise AnswerError(409, "request_id was already used for another answer")
                return stored
            swap = db.execute("SELECT swap FROM queue WHERE annotator = ? AND item_id = ?",
                              (annotator, item_id)).fetchone()
            if swap is None:
                raise AnswerError(404, f"item {item_id} is not in your queue")
            label = label_of(choice, bool(swap[0]))
            if label is None:
                confidence = None
            try:
                cursor = db.execute(
                    "INSERT INTO answers (request_id, annotator, item_id, choice, label, "
                    "confidence, seconds, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (request_id, annotator, item_id, choice, label, confidence, seconds,
                     time.time()))
            except sqlite3.IntegrityError:
                raise AnswerError(409, f"item {item_id} is already answered") from None
        assert cursor.lastrowid is not None  # an INSERT sets it
        return Answer(int(cursor.lastrowid), request_id, annotator, item_id, choice, label,
                      confidence, seconds)

    # --- reading back ----------------------------------------------------------------------
    def answers(self) -> list[Answer]:
        """Every stored answer (skips included), in the order they were stored."""
        return [Answer(*r[:8]) for r in self.db.execute(
            "SELECT * FROM answers ORDER BY answer_id")]


__all__ = ["ADMIN", "ANNOTATOR", "CHOICES", "Answer", "AnswerError", "Item", "Store",
           "label_of", "token_hash"]
