"""Numbers and text a model cannot take at face value: overflowing or non-float weights, a
vocabulary with no words, tokens longer than a piece, unknown tokens, invisible characters.

Each case runs the real command line and checks the exit code, the one-line message and that
the files it was given are byte for byte what they were.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from rnnlab.cli import main

GOOD_TEXT = "the cat sat on the mat\nthe dog sat on the log\n" * 20


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def kept(folder: Path):
    """Assert that `folder` holds the same files, byte for byte, after the block."""
    before = snapshot(folder)
    yield
    assert snapshot(folder) == before, "a failed command created or changed a file"


def user_error(capsys, argv: list, *needles: str) -> str:
    """Run the CLI in-process; assert exit 2 and one error line holding every needle."""
    rc = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"rnnlab {argv[0]}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def run_cli(*argv) -> subprocess.CompletedProcess:
    """`python -m rnnlab ARGV` for real, its output as text."""
    return subprocess.run([sys.executable, "-m", "rnnlab", *map(str, argv)], capture_output=True,
                          text=True, timeout=120)


# -- encoding errors name the flag -----------------------------------------------------------


def test_encoding_errors_name_the_errors_flag(capsys, tmp_path):
    (tmp_path / "latin1.txt").write_bytes(b"the cat\nsat \xff on\n")
    with kept(tmp_path):
        user_error(capsys, ["embed", tmp_path / "latin1.txt", "-o", tmp_path / "v.bin", "--quiet"],
                   "byte offset 12", "use --errors replace to read it anyway")
        user_error(capsys, ["embed", tmp_path / "latin1.txt", "-o", tmp_path / "v.bin", "--quiet",
                            "--errors", "whatever"], "'whatever'", "(try --errors replace)")
