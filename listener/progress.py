"""Progress bars for long commands: drawn on a terminal, silent when output is piped or logged
(tqdm's own check), always on standard error so data on standard output stays clean."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def _bar(items: Iterable[T] | None, desc: str, total: int | None, unit: str) -> tqdm:
    # disable=None: tqdm draws only when standard error is a terminal.
    return tqdm(
        items, desc=desc, total=total, unit=unit, file=sys.stderr, disable=None, dynamic_ncols=True
    )


def each(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate with a bar."""
    yield from _bar(items, desc, total, unit)


def each_batch(
    batches: Iterable[Sequence[T]], desc: str, unit: str = "it"
) -> Iterator[Sequence[T]]:
    """Iterate over batches with a bar that counts their items."""
    with _bar(None, desc, None, unit) as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch))


class Counter:
    """A progress(done, total) callback for library functions that report cumulative counts;
    the bar appears on the first report (when the total is known). Close it when done."""

    def __init__(self, desc: str, unit: str = "it") -> None:
        self.desc, self.unit = desc, unit
        self.shown: tqdm | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.shown is None:
            self.shown = _bar(None, self.desc, total or None, self.unit)  # 0: not known
        self.shown.update(done - self.shown.n)

    def write(self, line: str) -> None:
        """A line of text above the bar (or alone, when there is none)."""
        if self.shown is not None and not self.shown.disable:
            self.shown.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.shown is not None:
            self.shown.close()

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
