"""Several processes on one SQLite file: first starts that race never crash, and a second
`listener run` waits for the first instead of fetching everything twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

OPEN = (
    "import sys; from listener.storage.sqlite import SQLiteStorage; "
    "s = SQLiteStorage.open(sys.argv[1]); "
    "print(s.db.execute('SELECT count(*) FROM _sqlite_migrations').fetchone()[0]); s.close()"
)


def test_processes_starting_together_on_a_fresh_file_all_start(tmp_path):
    for attempt in range(5):
        db = tmp_path / f"fresh-{attempt}.db"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN, str(db)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], results
        assert len({out.strip() for out, _ in results}) == 1  # every migration, once


def _lines(proc: subprocess.Popen[str], into: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        into.append(line)


def _wait_for(lines: list[str], text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in lines):
        assert time.monotonic() < deadline, f"never printed {text!r}: {''.join(lines)}"
        time.sleep(0.1)


def test_a_second_run_on_the_same_file_waits_for_the_first(tmp_path: Path):
    config = tmp_path / "sources.yaml"
    config.write_text("brands: [{name: Acme}]\nsentiment: {model: m, revision: '1'}\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start() -> tuple[subprocess.Popen[str], list[str]]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "listener.cli", "-c", str(config), "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        lines: list[str] = []
        threading.Thread(target=_lines, args=(proc, lines), daemon=True).start()
        return proc, lines

    first, first_out = start()
    second = None
    try:
        _wait_for(first_out, "watching 0 sources")
        second, second_out = start()
        _wait_for(second_out, "another `listener run` is using")
        assert not any("watching" in line for line in second_out)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
        _wait_for(second_out, "watching 0 sources")  # took over once the first stopped
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
