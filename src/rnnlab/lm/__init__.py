"""Recurrent language models: the model, its data, training, checkpoints (and their use).

For notebooks: `from rnnlab.lm import train_language_model, load_model, score_sentence, generate`.
"""

from rnnlab.lm.checkpoint import load_model, save_model
from rnnlab.lm.generate import generate
from rnnlab.lm.kneser_ney import KneserNeyBigram
from rnnlab.lm.model import LanguageModel
from rnnlab.lm.score import SentenceScore, TokenScore, evaluate, format_table, score_sentence
from rnnlab.lm.train import TrainResult, TrainSettings, train_language_model

__all__ = ["KneserNeyBigram", "LanguageModel", "SentenceScore", "TokenScore", "TrainResult",
           "TrainSettings", "evaluate", "format_table", "generate", "load_model", "save_model",
           "score_sentence", "train_language_model"]
