"""The databases a benchmark runs on, side by side: a SQLite file, and a fresh database on a
PostgreSQL server (the one --postgres names, else a durable one, fsync on, started here from
Debian's `postgresql` package, as the tests do).

    with Backends(args.backends, args.postgres) as backends:
        for name in backends.names:
            with backends.database(name) as url: ...
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.postgres import fresh_database, server

LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=sorted(LABEL),
        default=["sqlite", "postgresql"],
        help="databases to run on, side by side (default: both)",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="admin URL of a PostgreSQL server to create throwaway databases on "
        "(default: start one here)",
    )


class Backends:
    def __init__(self, names: list[str], admin: str | None = None) -> None:
        self.names, self.admin = names, admin
        self._stack = ExitStack()
        self._tmp = Path()

    def __enter__(self) -> Backends:
        self._tmp = Path(self._stack.enter_context(tempfile.TemporaryDirectory()))
        if "postgresql" in self.names and self.admin is None:
            self.admin = self._stack.enter_context(server(durable=True))
            if self.admin is None:
                print("no PostgreSQL here (pass --postgres URL or install postgresql): SQLite only")
                self.names = [n for n in self.names if n != "postgresql"]
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    @contextmanager
    def database(self, name: str, tag: str = "bench") -> Iterator[str]:
        """A new empty database of this backend: its path or URL."""
        if name == "sqlite":
            path = self._tmp / f"{tag}.db"
            try:
                yield str(path)
            finally:
                for p in self._tmp.glob(f"{tag}.db*"):
                    p.unlink()
            return
        assert self.admin is not None
        with fresh_database(self.admin) as url:
            yield url


def ratio_line(label: str, values: dict[str, float], unit: str, higher_is_better: bool) -> str:
    """'label: SQLite 1,234 unit, PostgreSQL 567 unit (PostgreSQL/SQLite 0.46x)'."""
    parts = [f"{LABEL[n]} {v:,.0f} {unit}" if v >= 100 else f"{LABEL[n]} {v:.1f} {unit}"
             for n, v in values.items()]  # fmt: skip
    line = f"{label}: " + ", ".join(parts)
    if "sqlite" in values and "postgresql" in values and values["sqlite"]:
        r = values["postgresql"] / values["sqlite"]
        better = "higher is better" if higher_is_better else "lower is better"
        line += f"  (PostgreSQL/SQLite {r:.2f}x, {better})"
    return line
