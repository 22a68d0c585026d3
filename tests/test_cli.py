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


def subcommand(name):
    actions = [a for a in build_parser()._actions if a.dest == "command"]
    return actions[0].choices[name]


@pytest.mark.parametrize("name", ["evaluate", "score", "generate", "gradflow"])
def test_model_commands_take_a_device(name):
    from rnnlab.device import DEVICE_HELP

    (device,) = [a for a in subcommand(name)._actions if a.dest == "device"]
    assert device.default == "auto" and device.help == DEVICE_HELP


@pytest.mark.parametrize("name", ["embed", "similar", "analogy", "vectors-eval", "vectors-plot",
                                  "vectors-projector"])
def test_word_vector_commands_say_they_run_on_the_cpu(name):
    parser = subcommand(name)
    assert "CPU" in parser.description and "no GPU path" in parser.description
    assert not [a for a in parser._actions if a.dest == "device"]
