"""rnnlab: recurrent networks and word vectors, from the lecture's equations to fast code."""

__version__ = "0.1.0"
