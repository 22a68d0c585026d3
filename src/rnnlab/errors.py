"""The one exception type the command line turns into a one-line message."""


class RnnlabError(Exception):
    """A problem with the user's input or files, explained in one line; never a bug."""
