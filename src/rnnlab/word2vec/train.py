"""Word2Vec: learn word vectors from text (docs/lecture.md §3), word2vec.c's recipe behind gensim's API.

The lecture's N-m-N network: a one-hot word times the input matrix W_in (N x m) is the
word's vector (the hidden layer); the output matrix W_out (m x N) scores its neighbours.
A full softmax over N words is replaced, as in word2vec.c, by negative sampling (the true
neighbour against `negative` noise words drawn from unigram^0.75) or hierarchical softmax
(binary decisions along the word's Huffman path). Skip-gram pairs each word with the
neighbours in its window; CBOW predicts a word from its context's mean vector.

Recipe, as word2vec.c: frequent words are dropped at random (keep probability
(sqrt(c / t) + 1) t / c, t = sample x the vocabulary's words), the window shrinks to
1..window at random, the learning rate falls linearly from alpha to min_alpha over all
epochs, and worker threads update the shared matrices without locks. With one worker and a fixed seed
the vectors are bit-identical from run to run. The compiled loop is in `engine.py`.

The corpus: sentences (lists of words), text files (`Corpus`: one sentence a line), or a
token store (`rnnlab prepare`), whose vocabulary comes from its counts and whose words are
read from disk job by job (store_jobs.py), for corpora bigger than memory.

Model folder (`save` / `load`): `vectors.safetensors` with tensors "input" (the word
vectors) and "output" (the negative-sampling output matrix, or the hierarchical-softmax one
when negative = 0; "output_hs" holds the latter when both are on), `vocab.json` (words and
counts) and `config.json` (settings, format version, loss per epoch). `WordVectors.load` reads
the same folder as vectors; `Word2Vec.load` reads it to go on training.
"""

from __future__ import annotations

import json
import numbers
import os
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, as_completed, wait
from pathlib import Path

import numpy as np
import safetensors.numpy

from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_dir, atomic_write
from rnnlab.formats import check_format
from rnnlab.memory import check_fits
from rnnlab.text.corpus import Corpus
from rnnlab.text.store import TokenStore, is_store
from rnnlab.text.vocab import Vocabulary
from rnnlab.word2vec import engine
from rnnlab.word2vec.formats import NATIVE_VECTORS, NATIVE_VOCAB
from rnnlab.word2vec.huffman import huffman_codes
from rnnlab.word2vec.store_jobs import Job, StoreJobs, open_word_store, store_words
from rnnlab.word2vec.vectors import WordVectors

FORMAT, VERSION = "rnnlab-word2vec", 1
CONFIG = "config.json"
JOB_WORDS = 10_000  # words per compiled call: long enough to hide Python, short for the bar
IN_FLIGHT = 2  # jobs queued per worker thread: enough to keep it busy, few to bound memory
SETTINGS = ("vector_size", "window", "negative", "hs", "sg", "min_count", "max_vocab_size",
            "sample", "epochs", "alpha", "min_alpha", "workers", "seed")

Sentences = Iterable[Sequence[str]]
CorpusFile = str | os.PathLike | Sequence[str | os.PathLike] | TokenStore


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec.c's subsampling: keep a word of count c with (sqrt(c / t) + 1) t / c, t = sample N."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones(len(counts), np.float32)
    t = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / t) + 1.0) * t / np.maximum(counts, 1)).astype(np.float32)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """Negative-sampling probabilities, proportional to count^0.75."""
    p = np.asarray(counts, dtype=np.float64) ** power
    return p / p.sum()


def alias_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias table: draw i uniformly, keep it with prob[i], else take alias[i]."""
    n = len(p)
    q = np.asarray(p, dtype=np.float64) * n
    prob = np.ones(n, np.float64)
    alias = np.arange(n, dtype=np.int32)
    small = [i for i in range(n) if q[i] < 1.0]
    large = [i for i in range(n) if q[i] >= 1.0]
    while small and large:
        s, big = small.pop(), large[-1]
        prob[s], alias[s] = q[s], big
        q[big] -= 1.0 - q[s]
        if q[big] < 1.0:
            small.append(large.pop())
    return prob.astype(np.float32), alias


def alias_probabilities(prob: np.ndarray, alias: np.ndarray) -> np.ndarray:
    """The distribution an alias table draws from (for checking one)."""
    n = len(prob)
    p = prob.astype(np.float64) / n
    np.add.at(p, alias, (1.0 - prob.astype(np.float64)) / n)
    return p


def count_words(sentences: Sentences | TokenStore, min_count: int,
                max_size: int | None = None) -> Vocabulary:
    """Words seen min_count times, most frequent first, with their counts (no special tokens);
    a store's from its counts."""
    if isinstance(sentences, TokenStore):
        return store_words(sentences, min_count, max_size)
    return Vocabulary.build(_checked(sentences), min_count, max_size, specials=())


class Word2Vec:
    """Skip-gram / CBOW word vectors with negative sampling or hierarchical softmax.

    `Word2Vec(sentences)` (lists of tokens, re-iterable) or `Word2Vec(corpus_file=paths)`
    (text files, or a token store: its folder or a TokenStore) builds the vocabulary and
    trains at once; without either, call `build_vocab` and `train` yourself. `.wv` holds the
    vectors (rnnlab.word2vec.WordVectors).
    """

    def __init__(
        self,
        sentences: Sentences | None = None,
        corpus_file: CorpusFile | None = None,
        vector_size: int = 100,
        window: int = 5,
        negative: int = 5,
        hs: bool = False,
        sg: bool = True,
        min_count: int = 5,
        max_vocab_size: int | None = None,
        sample: float = 1e-3,
        epochs: int = 5,
        alpha: float | None = None,
        min_alpha: float = 1e-4,
        workers: int = 2,
        seed: int = 1,
        progress: Callable[[int, int, dict], None] | None = None,
    ) -> None:
        self.vector_size, self.window, self.negative = vector_size, window, negative
        self.hs, self.sg, self.min_count = bool(hs), bool(sg), min_count
        self.max_vocab_size, self.sample, self.epochs = max_vocab_size, sample, epochs
        self.alpha = (0.025 if sg else 0.05) if alpha is None else alpha
        self.min_alpha, self.workers, self.seed = min_alpha, workers, seed
        self._check_settings()
        self.vocab: Vocabulary | None = None
        self.w_in = self.w_out = self.w_hs = np.zeros((0, vector_size), np.float32)
        self.epochs_trained = 0
        self.loss_history: list[dict] = []
        self._wv: WordVectors | None = None
        if sentences is not None or corpus_file is not None:
            corpus = _corpus(sentences, corpus_file)
            self.build_vocab(corpus)
            self.train(corpus, progress=progress)

    def _check_settings(self) -> None:
        # config.json is user-editable: types first, so that every comparison below is sound.
        for name in ("vector_size", "window", "negative", "min_count", "epochs", "workers", "seed"):
            _check_type(name, getattr(self, name), int)
        for name in ("sample", "alpha", "min_alpha"):
            _check_type(name, getattr(self, name), float)
        if self.max_vocab_size is not None:
            _check_type("max_vocab_size", self.max_vocab_size, int)
        checks = [
            (self.vector_size >= 1, f"vector_size must be at least 1, got {self.vector_size}"),
            (self.window >= 1, f"window must be at least 1, got {self.window}"),
            (self.negative >= 0, f"negative must be 0 or more, got {self.negative}"),
            (self.negative > 0 or self.hs, "choose negative > 0 or hs=True (or both)"),
            (self.min_count >= 1, f"min_count must be at least 1, got {self.min_count}"),
            (self.sample >= 0, f"sample must be 0 or more, got {self.sample}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.alpha > 0 and self.min_alpha >= 0, "alpha must be positive, min_alpha not negative"),
            (self.workers >= 1, f"workers must be at least 1, got {self.workers}"),
            (self.seed >= 0, f"seed must be 0 or more, got {self.seed}"),
            (self.max_vocab_size is None or self.max_vocab_size >= 1,
             f"max_vocab_size must be at least 1, got {self.max_vocab_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise RnnlabError(message)

    def __repr__(self) -> str:
        kind = "skip-gram" if self.sg else "CBOW"
        words = 0 if self.vocab is None else len(self.vocab)
        return f"Word2Vec({kind}, {words} words, vector_size={self.vector_size})"

    # -- vocabulary ------------------------------------------------------------------------

    def build_vocab(
        self,
        sentences: Sentences | TokenStore | None = None,
        corpus_file: CorpusFile | None = None,
        update: bool = False,
    ) -> None:
        """Count the corpus; keep words seen min_count times. `update` adds new words to a model."""
        corpus = _corpus(sentences, corpus_file)
        if not update or self.vocab is None:
            vocab = count_words(corpus, self.min_count, self.max_vocab_size)
            if len(vocab) == 0:
                raise RnnlabError(f"no word occurs min_count={self.min_count} times in the corpus; "
                                  "lower min_count (--min-count)")
            self._check_memory(len(vocab))
            self.vocab = vocab
            self.w_in = self._init_rows(len(vocab), 0)
            self.w_out = np.zeros((len(vocab) if self.negative else 0, self.vector_size), np.float32)
            self.w_hs = np.zeros((max(len(vocab) - 1, 0) if self.hs else 0, self.vector_size), np.float32)
        else:
            self._add_words(count_words(corpus, 1))
        self._wv = None

    def _check_memory(self, words: int) -> None:
        """Refuse, before allocating, matrices that cannot fit in this machine's memory."""
        need = 4 * words * self.vector_size * (1 + bool(self.negative) + self.hs)
        check_fits(need, f"{words} words x {self.vector_size} dimensions", "lower the vector size")

    def _init_rows(self, n: int, first: int) -> np.ndarray:
        """word2vec.c's start: input vectors uniform in +-0.5 / dim (output vectors start at 0)."""
        rng = np.random.default_rng([self.seed, first])
        return (rng.random((n, self.vector_size), dtype=np.float32) - 0.5) / self.vector_size

    def _add_words(self, new: Vocabulary) -> None:
        """Add counts of known words; append unknown ones seen min_count times (gensim's update)."""
        counts = self.vocab.counts.copy()
        added, added_counts = [], []
        for word, c in zip(new.itos, new.counts.tolist()):
            i = self.vocab.stoi.get(word)
            if i is not None:
                counts[i] += c
            elif c >= self.min_count:
                added.append(word)
                added_counts.append(c)
        V, n = len(self.vocab), len(added)
        self.vocab = Vocabulary(self.vocab.itos + added, np.r_[counts, added_counts], specials=())
        self.w_in = np.vstack([self.w_in, self._init_rows(n, V)])
        zeros = np.zeros((n, self.vector_size), np.float32)
        if self.negative:
            self.w_out = np.vstack([self.w_out, zeros])
        if self.hs:
            self.w_hs = np.vstack([self.w_hs, zeros])[: max(V + n - 1, 0)]

    def encode(self, sentences: Sentences) -> tuple[np.ndarray, np.ndarray, int]:
        """The corpus as one int32 array of known words' ids, sentence starts and the raw word count."""
        self._need_vocab()
        stoi = self.vocab.stoi
        ids, starts, raw = array("i"), array("q", [0]), 0
        for sentence in _checked(sentences):
            raw += len(sentence)
            ids.extend([i for i in map(stoi.get, sentence) if i is not None])
            if len(ids) > starts[-1]:
                starts.append(len(ids))
        return np.frombuffer(ids, np.int32), np.frombuffer(starts, np.int64), raw

    def _need_vocab(self) -> None:
        if self.vocab is None:
            raise RnnlabError("no vocabulary: call build_vocab before train")

    # -- training --------------------------------------------------------------------------

    def train(
        self,
        sentences: Sentences | TokenStore | None = None,
        corpus_file: CorpusFile | None = None,
        epochs: int | None = None,
        progress: Callable[[int, int, dict], None] | None = None,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> dict:
        """Train on a corpus for `epochs` (default self.epochs); returns totals of the run.

        Unknown words are skipped (build_vocab(update=True) adds them first); a token store's
        words are read from disk every epoch, never held whole. `progress` is
        called as jobs finish with (words done, words in all, {"lr", "loss"}) of the whole
        run, for a progress bar; `on_epoch` gets each epoch's
        record {"epoch", "loss" (per example), "examples" (skip-gram: (centre, context) pairs;
        CBOW: centre words), "alpha", "words", "seconds", "words_per_s"}.
        """
        epochs = self.epochs if epochs is None else epochs
        if epochs < 1:
            raise RnnlabError(f"epochs must be at least 1, got {epochs}")
        self._need_vocab()
        corpus = _corpus(sentences, corpus_file, once=True)
        if isinstance(corpus, TokenStore):
            jobs = StoreJobs(corpus, self.vocab, JOB_WORDS)
        else:
            jobs = _ArrayJobs(*self.encode(corpus))
        if jobs.total == 0:
            raise RnnlabError("the corpus has no word of the vocabulary")
        pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        run = _Run(self, jobs, epochs, pool, progress)
        start_time = time.perf_counter()
        try:
            for e in range(epochs):
                record = run.epoch(e)
                self.loss_history.append(record)
                if on_epoch is not None:
                    on_epoch(record)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            self._wv = None
        seconds = time.perf_counter() - start_time
        return {"words": epochs * jobs.raw, "seconds": seconds,
                "words_per_s": epochs * jobs.raw / max(seconds, 1e-9),
                "loss": self.loss_history[-1]["loss"]}

    def _alpha_at(self, progress: float) -> float:
        """The linearly decaying learning rate at `progress` (0..1) through this run."""
        return self.alpha - (self.alpha - self.min_alpha) * progress

    def _tables(self) -> tuple[np.ndarray, ...]:
        """What the engine samples from: keep probabilities, noise alias table, Huffman codes."""
        counts = self.vocab.counts
        keep = keep_probabilities(counts, self.sample)
        if self.negative:
            if len(counts) < 2:  # the only noise word would be the true word, forever
                raise RnnlabError("negative sampling needs at least two words in the vocabulary")
            prob, alias = alias_table(noise_distribution(counts))
        else:
            prob, alias = np.ones(1, np.float32), np.zeros(1, np.int32)
        if self.hs:
            return (keep, prob, alias, *huffman_codes(counts))
        no_codes = np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.int32), np.zeros(1, np.int32)
        return (keep, prob, alias, *no_codes)

    # -- results and files -----------------------------------------------------------------

    @property
    def wv(self) -> WordVectors:
        """The word vectors (rows of the input matrix, shared, not copied) with their counts."""
        if self._wv is None:
            if self.vocab is None:
                raise RnnlabError("no vocabulary yet: build_vocab and train first")
            self._wv = WordVectors(self.vocab.itos, self.w_in, self.vocab.counts)
        return self._wv

    def settings(self) -> dict:
        """The training settings, as config.json stores them."""
        return {name: getattr(self, name) for name in SETTINGS}

    def save(self, path: str | os.PathLike) -> None:
        """Write the model folder (weights, vocabulary, settings) atomically."""
        if self.vocab is None:
            raise RnnlabError("nothing to save: the model has no vocabulary yet")
        tensors = {"input": self.w_in}
        if self.negative:
            tensors["output"] = self.w_out
        if self.hs:
            tensors["output_hs" if self.negative else "output"] = self.w_hs
        config = {"format": FORMAT, "version": VERSION, "settings": self.settings(),
                  "epochs_trained": self.epochs_trained, "loss_history": self.loss_history}
        with atomic_dir(path, "word-vectors") as tmp:
            (tmp / NATIVE_VECTORS).write_bytes(safetensors.numpy.save(tensors))
            self.vocab.save(tmp / NATIVE_VOCAB)
            with atomic_write(tmp / CONFIG) as f:
                json.dump(config, f, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Word2Vec:
        """Read a model folder written by `save`, ready to train further."""
        path = Path(path)
        if not (path / CONFIG).is_file():
            raise RnnlabError(f"{path}: not a word2vec model folder (no {CONFIG})")
        try:
            config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RnnlabError(f"{path / CONFIG}: not valid JSON ({e})") from None
        check_format(config, path / CONFIG, FORMAT, VERSION, "word2vec model")
        settings = config.get("settings", {})
        if not isinstance(settings, dict):
            raise RnnlabError(f"{path / CONFIG}: 'settings' must be an object")
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise RnnlabError(f"{path / CONFIG}: unknown settings {sorted(unknown)}")
        try:
            for name in ("hs", "sg"):
                _check_type(name, settings.get(name, False), bool)
            _check_type("epochs_trained", config.get("epochs_trained", 0), int)
            _check_type("loss_history", config.get("loss_history", []), list)
            model = cls(**settings)
        except RnnlabError as e:
            raise RnnlabError(f"{path / CONFIG}: {e}") from None
        model.vocab = Vocabulary.load(path / NATIVE_VOCAB)
        try:
            tensors = safetensors.numpy.load_file(path / NATIVE_VECTORS)
        except (OSError, ValueError, safetensors.SafetensorError) as e:
            raise RnnlabError(f"{path / NATIVE_VECTORS}: cannot read ({e})") from None
        V, d = len(model.vocab), model.vector_size
        names = {"input": (V, d)}
        if model.negative:
            names["output"] = (V, d)
        if model.hs:
            names["output_hs" if model.negative else "output"] = (max(V - 1, 0), d)
        for name, shape in names.items():
            if name not in tensors or tensors[name].shape != shape:
                got = tensors[name].shape if name in tensors else "missing"
                raise RnnlabError(f"{path / NATIVE_VECTORS}: tensor {name!r} should be {shape}, is {got}")
        model.w_in = np.array(tensors["input"], np.float32)
        if model.negative:
            model.w_out = np.array(tensors["output"], np.float32)
        if model.hs:
            model.w_hs = np.array(tensors["output_hs" if model.negative else "output"], np.float32)
        model.epochs_trained = int(config.get("epochs_trained", 0))
        model.loss_history = list(config.get("loss_history", []))
        return model


class _ArrayJobs:
    """An encoded corpus in memory, cut into jobs at the first sentence start past every
    JOB_WORDS words (store_jobs.StoreJobs cuts a store's words the same way)."""

    def __init__(self, ids: np.ndarray, starts: np.ndarray, raw: int) -> None:
        self.ids, self.starts, self.raw, self.total = ids, starts, raw, len(ids)
        S = len(starts) - 1
        edges = np.unique(np.r_[np.searchsorted(starts[:-1], np.arange(0, self.total, JOB_WORDS)), S])
        self.edges = list(zip(edges[:-1].tolist(), edges[1:].tolist()))

    def __iter__(self) -> Iterator[Job]:
        """Every job: (ids, starts, first sentence, end sentence, position of its first word)."""
        for s0, s1 in self.edges:
            yield self.ids, self.starts, s0, s1, int(self.starts[s0])


class _Run:
    """One call of `train`: the corpus's jobs, run epoch by epoch."""

    def __init__(self, model: Word2Vec, jobs: _ArrayJobs | StoreJobs, epochs: int,
                 pool: ThreadPoolExecutor | None,
                 progress: Callable[[int, int, dict], None] | None) -> None:
        self.model, self.jobs, self.epochs = model, jobs, epochs
        self.total, self.raw = jobs.total, jobs.raw
        self.pool, self.progress = pool, progress
        self.tables = model._tables()
        # A job starts at most once per JOB_WORDS words: a seed for each, drawn up front.
        self.max_jobs = -(-self.total // JOB_WORDS)

    def alpha(self, e: int, position: int) -> float:
        """The learning rate at word `position` of epoch e."""
        return self.model._alpha_at((e * self.total + position) / (self.epochs * self.total))

    def job(self, e: int, job: Job, seed: int) -> tuple[float, int, int]:
        """Train on one job of epoch e; returns (loss sum, examples, words)."""
        m, (ids, starts, s0, s1, p0) = self.model, job
        p1 = p0 + int(starts[s1] - starts[s0])
        loss, n = engine.train_chunk(
            m.w_in, m.w_out, m.w_hs, ids, starts, s0, s1, *self.tables,
            m.sg, m.negative, m.hs, m.window, self.alpha(e, p0), self.alpha(e, p1), seed)
        return loss, n, p1 - p0

    def results(self, e: int) -> Iterator[tuple[float, int, int]]:
        """Every job's result in epoch e: in order with one worker, else as the threads finish,
        with at most IN_FLIGHT jobs a thread queued."""
        m = self.model
        seeds = np.random.SeedSequence([m.seed, m.epochs_trained]).generate_state(self.max_jobs, np.uint64)
        args = ((e, job, int(seeds[j] >> 1)) for j, job in enumerate(self.jobs))
        if self.pool is None:
            yield from (self.job(*a) for a in args)
            return
        pending = set()
        for a in args:
            pending.add(self.pool.submit(self.job, *a))
            if len(pending) >= IN_FLIGHT * m.workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        yield from (f.result() for f in as_completed(pending))

    def epoch(self, e: int) -> dict:
        """Run every job of epoch e and return its record."""
        m, start = self.model, time.perf_counter()
        loss_sum, examples, done = 0.0, 0, 0
        for loss, n, words in self.results(e):
            loss_sum, examples, done = loss_sum + loss, examples + n, done + words
            if self.progress:  # in raw words, so that an epoch adds up exactly
                self.progress(e * self.raw + round(done * self.raw / self.total),
                              self.epochs * self.raw,
                              {"lr": self.alpha(e, done), "loss": loss_sum / max(examples, 1)})
        seconds = time.perf_counter() - start
        m.epochs_trained += 1
        return {"epoch": m.epochs_trained, "loss": loss_sum / max(examples, 1), "examples": examples,
                "alpha": round(self.alpha(e, self.total), 8), "words": self.raw, "seconds": round(seconds, 3),
                "words_per_s": round(self.raw / max(seconds, 1e-9))}


KINDS = {int: (numbers.Integral, "an integer"), float: (numbers.Real, "a number"),
         bool: (bool, "true or false"), list: (list, "a list")}


def _check_type(name: str, value: object, kind: type) -> None:
    """RnnlabError unless `value` is of `kind` (a key of KINDS); a bool is not a number."""
    cls, description = KINDS[kind]
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, cls):
        raise RnnlabError(f"{name} must be {description}, got {value!r}")


def _corpus(sentences: Sentences | TokenStore | None, corpus_file: CorpusFile | None,
            once: bool = False) -> Sentences | TokenStore:
    """Exactly one of sentences or corpus file path(s) (or a store); re-iterable unless read `once`."""
    if (sentences is None) == (corpus_file is None):
        raise RnnlabError("give either sentences or corpus_file")
    if isinstance(corpus_file, TokenStore) or isinstance(sentences, TokenStore):
        return corpus_file if corpus_file is not None else sentences  # opened already
    if corpus_file is not None:
        if isinstance(corpus_file, (str, os.PathLike)) and is_store(corpus_file):
            return open_word_store(corpus_file)
        return Corpus(corpus_file)
    if not once and iter(sentences) is sentences:
        raise RnnlabError("sentences must be re-iterable (a list or a Corpus), not an iterator")
    return sentences


def _checked(sentences: Sentences) -> Iterable[Sequence[str]]:
    """Sentences, refusing a bare string: it would be read as a list of characters."""
    for sentence in sentences:
        if isinstance(sentence, str):
            raise RnnlabError("each sentence must be a list of tokens, not a string")
        yield sentence
