"""The command's shell: help, and user errors as one line with exit 2."""

import subprocess
import sys

import pytest

from rnnlab.cli import build_parser, main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "COMMAND" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: rnnlab" in capsys.readouterr().out


def test_every_subcommand_has_help():
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    for name, sub in actions[0].choices.items():
        assert sub.format_help(), name


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "rnnlab", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("rnnlab ")
