"""check_fits: one line before allocating what memory cannot hold; silent where unknown."""

import pytest

from rnnlab import memory
from rnnlab.errors import RnnlabError


def test_what_fits_passes_and_what_does_not_is_refused(monkeypatch):
    monkeypatch.setattr(memory, "physical_memory", lambda: 2 * 2**30)
    memory.check_fits(2**30, "the matrix")
    with pytest.raises(RnnlabError) as e:
        memory.check_fits(3 * 2**30, "the matrix", "make it smaller")
    assert str(e.value) == "the matrix would need 3.0 GiB, more than this machine's 2.0 GiB; make it smaller"
    with pytest.raises(RnnlabError, match="2.0 GiB$"):
        memory.check_fits(2 * 2**30 + 1, "the matrix")


def test_a_system_that_does_not_say_refuses_nothing(monkeypatch):
    def unknown(name):
        raise ValueError(name)

    monkeypatch.setattr(memory.os, "sysconf", unknown)
    assert memory.physical_memory() is None
    memory.check_fits(2**60, "anything")


def test_this_machine_says():
    assert memory.physical_memory() > 0
