"""README.md is the manual: its commands must be the ones CI runs, and it must cover the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import click

from listener.cli import cli

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def _setup_commands() -> list[str]:
    section = README.split("## Set up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_gives_exactly_two_setup_commands():
    run, test = _setup_commands()
    assert "torch==2.13.0" in run and run.endswith("listener run")
    assert "torch==2.13.0" in test and "pytest" in test


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _setup_commands()[1] in ci


def test_every_command_has_help_and_is_documented():
    def walk(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
        found = []
        for name, command in group.commands.items():
            found.append((f"{prefix} {name}", command))
            if isinstance(command, click.Group):
                found += walk(command, f"{prefix} {name}")
        return found

    for name, command in walk(cli, "listener"):
        assert command.help, f"{name} has no help text"
        assert f"`{name}" in README, f"{name} is not documented in README.md"
