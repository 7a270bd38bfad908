"""Progress bars for long work (rich): items done, items/s, and an optional second rate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console(stderr=True, soft_wrap=True)


class _RateColumn(ProgressColumn):
    """Rate of a counter kept in the task's fields (e.g. steps/s next to episodes/s)."""

    def __init__(self, field: str, unit: str) -> None:
        super().__init__()
        self.field, self.unit = field, unit

    def render(self, task: Task) -> Text:
        elapsed = max(time.monotonic() - task.fields["started"], 1e-9)
        count = (task.completed - task.fields["done_before"] if self.field == "completed"
                 else task.fields.get(self.field, 0))  # restored items were not done now
        return Text(f"{count / elapsed:,.1f} {self.unit}/s", style="progress.data.speed")


class Bar:
    """Handle returned by :func:`progress`: advance it by items and, optionally, sub-items."""

    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress, self._task = progress, task_id
        self._extra = 0

    def advance(self, items: int = 1, extra: int = 0) -> None:
        self._extra += extra
        self._progress.update(self._task, advance=items, extra=self._extra)


@contextmanager
def progress(description: str, total: int, unit: str = "items",
             extra_unit: str | None = None, done: int = 0) -> Iterator[Bar]:
    """A progress bar with items/s (and ``extra_unit``/s, when given)."""
    columns: list[ProgressColumn] = [TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), _RateColumn("completed", unit)]
    if extra_unit:
        columns.append(_RateColumn("extra", extra_unit))
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False, refresh_per_second=2) as bar:
        task_id = bar.add_task(description, total=total, completed=done,
                               started=time.monotonic(), extra=0, done_before=done)
        yield Bar(bar, task_id)
