"""Recurrent language models: the model, its data, training, checkpoints (and their use)."""

from rnnlab.lm.checkpoint import load_model, save_model
from rnnlab.lm.model import LanguageModel
from rnnlab.lm.train import TrainResult, TrainSettings, train_language_model

__all__ = ["LanguageModel", "TrainResult", "TrainSettings", "load_model", "save_model",
           "train_language_model"]
