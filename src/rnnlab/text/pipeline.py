"""The text pipeline: how a language model reads text into token ids and writes ids back.

One object holds the three choices that decide it, saved with every model:
- `level`: word (whitespace), char (code points), segmented (pre-split, e.g. Chinese words
  separated by spaces) or jieba (raw Chinese cut by jieba);
- `mode`: stream (the text is one sequence; each line ends with `</s>`, at character level
  with the newline itself) or sentence (each line is `<s> w1 .. wn </s>`, read from a zero
  state);
- `lower`: lowercase everything read.

"<S>", the context a sentence is read from, is `<s>` in sentence mode; in stream mode, where
lines are only separated, the end of the line before (`</s>`, or the newline at character level).
Written text joins words with spaces, characters and jieba's words without, and turns `</s>`
back into a line break.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rnnlab.errors import RnnlabError
from rnnlab.text.corpus import MAX_PIECE_CHARS, split_long
from rnnlab.text.tokenize import LEVELS, UNSPACED_LEVELS, get_tokenizer
from rnnlab.text.vocab import BOS, EOS, UNK, Vocabulary

MODES = ("stream", "sentence")


def check_level_mode(level: str, mode: str) -> None:
    """Raise RnnlabError for an unknown level or mode."""
    if level not in LEVELS:
        raise RnnlabError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if mode not in MODES:
        raise RnnlabError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


@dataclass(frozen=True)
class TextPipeline:
    """Level, mode and case: text to token ids for a vocabulary, and ids back to text."""

    level: str = "word"
    mode: str = "stream"
    lower: bool = False

    def __post_init__(self) -> None:
        check_level_mode(self.level, self.mode)
        if not isinstance(self.lower, bool):
            raise RnnlabError(f"'lower' must be true or false, got {self.lower!r}")

    @classmethod
    def from_config(cls, config: dict) -> TextPipeline:
        """The pipeline a model folder's config.json describes."""
        return cls(config["level"], config["mode"], config.get("lower", False))

    def to_config(self) -> dict:
        """The keys config.json keeps for this pipeline."""
        return {"level": self.level, "mode": self.mode, "lower": self.lower}

    @property
    def specials(self) -> tuple[str, ...]:
        """The special tokens a vocabulary needs: stream text has no `<s>`, characters no `</s>`."""
        if self.mode == "sentence":
            return (UNK, BOS, EOS)
        return (UNK,) if self.level == "char" else (UNK, EOS)

    @property
    def start_token(self) -> str:
        """"<S>": the token a sentence is read after (see the module's docstring)."""
        if self.mode == "sentence":
            return BOS
        return "\n" if self.level == "char" else EOS

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one piece of text, without markers."""
        return get_tokenizer(self.level, lower=self.lower)(text)

    def token_lines(self, lines: Iterable[str]) -> Iterator[list[str]]:
        """Token lists with the mode's markers; blank lines carry no words and are skipped,
        except in character streams, where their newline is part of the text."""
        tokenize = get_tokenizer(self.level, lower=self.lower)
        for line in lines:
            line = line.rstrip("\r\n")
            if self.mode == "sentence":
                tokens = tokenize(line)
                if tokens:
                    yield [BOS, *tokens, EOS]
                continue
            # A stream line is tokenized in pieces cut at spaces (text8 is one 100 MB line),
            # so no list of all its tokens is ever built; only its last piece carries the end
            # marker. A token longer than a piece stays whole.
            tokens, any_tokens = [], False
            for piece in split_long(line, MAX_PIECE_CHARS, self.level in UNSPACED_LEVELS):
                if tokens:
                    yield tokens
                tokens = tokenize(piece)
                any_tokens = any_tokens or bool(tokens)
            if self.level == "char":
                yield [*tokens, "\n"]
            elif any_tokens:
                yield [*tokens, EOS]

    def build_vocab(self, lines: Iterable[str], min_count: int = 1,
                    max_size: int | None = None) -> Vocabulary:
        """The vocabulary of these lines' tokens, with the specials this level and mode need."""
        return Vocabulary.build(self.token_lines(lines), min_count=min_count, max_size=max_size,
                                specials=self.specials)

    def encode_tokens(self, token_lines: Iterable[list[str]],
                      vocab: Vocabulary) -> list[int] | list[list[int]]:
        """Ids of `token_lines`: one flat list in stream mode, one list per sentence in sentence mode."""
        if self.mode == "sentence":
            return [vocab.encode(tokens) for tokens in token_lines]
        return [i for tokens in token_lines for i in vocab.encode(tokens)]

    def encode(self, lines: Iterable[str], vocab: Vocabulary) -> list[int] | list[list[int]]:
        """Ids of text lines (see `encode_tokens`)."""
        return self.encode_tokens(self.token_lines(lines), vocab)

    def start_ids(self, vocab: Vocabulary) -> list[int]:
        """The context every sentence is read from: the id of `start_token`."""
        if self.start_token not in vocab.stoi:
            raise RnnlabError(f"the model's vocabulary has no start token {self.start_token!r}")
        return [vocab.stoi[self.start_token]]

    def encode_prompt(self, text: str, vocab: Vocabulary) -> tuple[list[int], list[str]]:
        """Ids of the tokens of `text` (no markers) and the tokens that were mapped to `<unk>`."""
        tokens = self.tokenize(text)
        unknown = [t for t in tokens if t not in vocab.stoi]
        if unknown and vocab.unk_id is None:
            raise RnnlabError(f"{unknown[0]!r} is not in the model's vocabulary, which has no <unk>")
        return vocab.encode(tokens), unknown

    def pieces(self, tokens: Iterable[str], after: str = "") -> Iterator[str]:
        """The text of each token as it continues text that ended with `after`: words get a
        space before them except at a line start, `</s>` becomes a line break."""
        at_line_start = after == "" or after.endswith("\n")
        space = "" if self.level in UNSPACED_LEVELS else " "
        for token in tokens:
            if self.level == "char":
                yield token
            elif token == EOS:
                yield "\n"
                at_line_start = True
            else:
                yield token if at_line_start else space + token
                at_line_start = False

    def decode(self, tokens: Iterable[str]) -> str:
        """Text from tokens (see `pieces`)."""
        return "".join(self.pieces(tokens))
