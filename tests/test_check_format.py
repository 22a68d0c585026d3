"""check_format: the first check of every rnnlab file, with one wording for all of them."""

import pytest

from rnnlab.errors import RnnlabError
from rnnlab.formats import check_format


def test_the_right_format_and_version_pass():
    check_format({"format": "rnnlab-x", "version": 2, "more": 1}, "f.json", "rnnlab-x", 2, "thing")


@pytest.mark.parametrize("doc, message", [
    ([], "f.json: not an rnnlab thing (format is not 'rnnlab-x')"),
    ({"format": "other", "version": 2}, "f.json: not an rnnlab thing (format is not 'rnnlab-x')"),
    ({"format": "rnnlab-x"}, "f.json: thing version None is not supported (this rnnlab reads version 2)"),
    ({"format": "rnnlab-x", "version": "2"},
     "f.json: thing version '2' is not supported (this rnnlab reads version 2)"),
])
def test_anything_else_is_one_line(doc, message):
    with pytest.raises(RnnlabError) as e:
        check_format(doc, "f.json", "rnnlab-x", 2, "thing")
    assert str(e.value) == message
