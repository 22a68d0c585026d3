"""Recurrent language models: the model, its data, training, checkpoints and their use.

For notebooks: `from rnnlab.lm import LM, train_language_model`; `LM.load(folder)` then
`score`, `evaluate`, `generate`, `write`, `step` and `activations`.
"""

from rnnlab.lm.bundle import LM, Activations
from rnnlab.lm.cache import Cache
from rnnlab.lm.dynamic import Dynamic
from rnnlab.lm.kneser_ney import KneserNeyBigram
from rnnlab.lm.model import LanguageModel
from rnnlab.lm.score import SentenceScore, TokenScore, format_table
from rnnlab.lm.settings import TrainSettings
from rnnlab.lm.train import TrainResult, train_language_model
from rnnlab.text.pipeline import TextPipeline

__all__ = ["LM", "Activations", "Cache", "Dynamic", "KneserNeyBigram", "LanguageModel",
           "SentenceScore", "TextPipeline", "TokenScore", "TrainResult", "TrainSettings", "format_table",
           "train_language_model"]
