"""The whole lecture in a few minutes: word vectors, then an LSTM language model fed by them.

The corpus ships inside gensim's wheel (the `rnnlab[demo]` extra): 106 articles of English
Wikipedia as raw MediaWiki XML. It is turned into plain sentences here, split by article into
training and validation text, and then:

1. word2vec learns 100-dimensional vectors from the training text (neighbours, analogies);
2. a word-level LSTM, its input embedding started from those vectors, learns P(w_t | w_<t);
3. an interpolated Kneser–Ney bigram model fitted on the same text is its baseline;
4. the LSTM scores a sentence token by token and writes text at two temperatures.

Everything lands in one folder (default `demo-output/`), built under a temporary name and
swapped in whole at the end.
"""

from __future__ import annotations

import bz2
import html
import importlib.util
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_dir, atomic_write
from rnnlab.lm.data import read_text
from rnnlab.lm.kneser_ney import KneserNeyBigram
from rnnlab.lm.score import format_table
from rnnlab.lm.train import train_language_model
from rnnlab.text.tokenize import tokenize_words

WIKI_SAMPLE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

# Wiki markup is removed in this order: comments and references (not prose), templates
# innermost first (they nest), tables, file and category links; other links keep their label.
# What survives is prose, with a few leftovers that do no harm to a language model.
COMMENT = re.compile(r"<!--.*?-->", re.S)
REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S | re.I)
TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
TABLE = re.compile(r"\{\|.*?\|\}", re.S)
FILE_LINK = re.compile(r"\[\[(?:File|Image|Category):[^\[\]]*(?:\[\[[^\]]*\]\][^\[\]]*)*\]\]",
                       re.I)
LINK = re.compile(r"\[\[(?:[^\]|]*\|)?([^\]]*)\]\]")
EXTERNAL_LINK = re.compile(r"\[https?://\S+\s*([^\]]*)\]")
TAG = re.compile(r"<[^>]+>")
QUOTES = re.compile(r"'{2,}")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")

NEIGHBOUR_WORDS = ("king", "music", "war", "france", "water")
# a is to b as c is to ?  Analogies need far more text than these 430k words: the first
# comes out right here, the second nearly, the famous third not.
ANALOGIES = (("he", "his", "she"), ("city", "cities", "country"), ("man", "king", "woman"))
SENTENCE = "the war ended with a treaty between the two countries ."

FULL = dict(vector_size=100, w2v_epochs=5, hidden_size=256, layers=1, epochs=2, bptt=35,
            batch_size=32, lr=3e-3, min_count=5, sentences=None, threads=None)
# Two epochs even here, so that tests go through the per-epoch resume. One thread: for models
# this small, a second one only adds waiting.
QUICK = dict(vector_size=16, w2v_epochs=1, hidden_size=32, layers=1, epochs=2, bptt=20,
             batch_size=16, lr=1e-2, min_count=2, sentences=300, threads=1)


def gensim_datapath(name: str) -> Path:
    """A file shipped in gensim's wheel (the demo's corpus), or a one-line hint to install it."""
    # find_spec locates the package without importing it (gensim takes seconds to import).
    spec = importlib.util.find_spec("gensim")
    if spec is None or spec.origin is None:
        raise RnnlabError("the demo's corpus ships with gensim: pip install 'rnnlab[demo]'")
    path = Path(spec.origin).parent / "test" / "test_data" / name
    if not path.is_file():
        raise RnnlabError(f"{path} is missing; reinstall gensim: pip install 'rnnlab[demo]'")
    return path


def wiki_articles(path: str | Path) -> Iterator[tuple[str, str]]:
    """(title, wiki markup) of each article of a MediaWiki XML dump (.bz2), redirects skipped."""
    with bz2.open(path, "rb") as f:
        for _, elem in ET.iterparse(f):
            if elem.tag.endswith("}page"):
                text = elem.findtext("{*}revision/{*}text") or ""
                redirect = text.lstrip().upper().startswith("#REDIRECT")
                if elem.findtext("{*}ns") == "0" and not redirect:
                    yield elem.findtext("{*}title"), text
                elem.clear()  # keeps memory flat while streaming


def wiki_paragraphs(markup: str) -> list[str]:
    """The prose paragraphs of one article's wiki markup."""
    text = REF.sub("", COMMENT.sub("", markup))
    previous = None
    while previous != text:
        previous, text = text, TEMPLATE.sub("", text)
    text = FILE_LINK.sub("", TABLE.sub("", text))
    text = EXTERNAL_LINK.sub(r"\1", LINK.sub(r"\1", text))
    text = QUOTES.sub("", TAG.sub("", html.unescape(text)))
    # Headings, lists, indents and table rows are not running prose; short lines are captions.
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if len(line) >= 40 and line[0] not in "=*#:;|!{}"]


def article_sentences(markup: str) -> list[list[str]]:
    """An article's sentences as lowercased tokens, punctuation split off."""
    sentences = (tokenize_words(s, lower=True, split_punct=True)
                 for paragraph in wiki_paragraphs(markup)
                 for s in SENTENCE_END.split(paragraph))
    return [s for s in sentences if len(s) >= 3]


def prepare_corpus(folder: Path, sentences: int | None = None) -> dict:
    """Write train.txt and valid.txt (one tokenized sentence per line; every 10th article is
    held out for validation) and return their sizes; `sentences` caps the training text
    (and the validation text at a tenth of it)."""
    train, valid = [], []
    for k, (_, markup) in enumerate(wiki_articles(gensim_datapath(WIKI_SAMPLE))):
        (valid if k % 10 == 9 else train).extend(article_sentences(markup))
    if not train or not valid:
        raise RnnlabError("the Wikipedia sample gave no text; is the gensim install complete?")
    if sentences is not None:
        train, valid = train[:sentences], valid[: max(1, sentences // 10)]
    for name, sentences in (("train", train), ("valid", valid)):
        with atomic_write(folder / f"{name}.txt") as f:
            f.writelines(" ".join(s) + "\n" for s in sentences)
    # Tokens as the language model counts them: the words and each sentence's end marker.
    return {"articles": k + 1,
            "train_sentences": len(train), "train_tokens": sum(map(len, train)) + len(train),
            "valid_sentences": len(valid), "valid_tokens": sum(map(len, valid)) + len(valid)}


def train_vectors(sentences: list[list[str]], folder: Path, sizes: dict, say: Callable) -> dict:
    """Word2vec on the training sentences; prints neighbours and analogies, saves the vectors."""
    from rnnlab.word2vec import Word2Vec

    start = time.perf_counter()
    # One worker: two train faster but in a racy order (Hogwild), so the neighbours would
    # change from run to run.
    w2v = Word2Vec(sentences=sentences, vector_size=sizes["vector_size"], window=5,
                   min_count=sizes["min_count"], epochs=sizes["w2v_epochs"], workers=1, seed=1)
    wv = w2v.wv
    wv.save(folder)
    seconds = time.perf_counter() - start
    say(f"\n== 1. word2vec: {len(wv):,} words × {wv.vector_size} dimensions ({seconds:.1f} s)")
    neighbours = {}
    for word in NEIGHBOUR_WORDS:
        if word in wv:
            neighbours[word] = [w for w, _ in wv.most_similar(word, topn=5)]
            say(f"   nearest to {word!r}: {', '.join(neighbours[word])}")
    result = {"words": len(wv), "seconds": seconds, "neighbours": neighbours, "analogies": []}
    for a, b, c in ANALOGIES:
        if all(w in wv for w in (a, b, c)):
            answer = [w for w, _ in wv.analogy(a, b, c, topn=3)]
            say(f"   {a} : {b} = {c} : ?  →  {', '.join(answer)}")
            result["analogies"].append({"question": [a, b, c], "answers": answer})
    return result


def train_lm(folder: Path, sizes: dict, seed: int, say: Callable, report: Callable | None):
    """The LSTM language model, one epoch per call so that each epoch's result is said;
    `report` hears the trainer's progress (rnnlab.lm.trainer)."""
    for epoch in range(1, sizes["epochs"] + 1):
        first = dict(min_count=sizes["min_count"], vectors=str(folder / "word2vec"),
                     embed_size=sizes["vector_size"],
                     lower=True,  # the text is lowercase already; this lowercases user input
                     layers=sizes["layers"], hidden_size=sizes["hidden_size"],
                     optimizer="adam", lr=sizes["lr"], bptt=sizes["bptt"],
                     batch_size=sizes["batch_size"], seed=seed,
                     valid=str(folder / "corpus" / "valid.txt"))
        trained = train_language_model(
            folder / "corpus" / "train.txt", folder / "lm", resume=epoch > 1,
            **({} if epoch > 1 else first), epochs=epoch, threads=sizes["threads"],
            report=report)
        h = trained.history[-1]
        say(f"   epoch {epoch}: validation perplexity {h['valid_ppl']:.1f} "
            f"(training {h['train_ppl']:.1f}; {h['seconds']:.0f} s, {h['tokens_per_s']:,} tokens/s)")
    return trained


def run_demo(outdir: str | Path = "demo-output", quick: bool = False, seed: int = 1,
             say: Callable[[str], None] = lambda line: None,
             report: Callable[[str, dict], None] | None = None) -> dict:
    """Run every step of the demo, handing each line of its account to `say` (and the
    language model's training progress to `report`); returns (and saves) the figures."""
    sizes = QUICK if quick else FULL
    torch.manual_seed(seed)
    began = time.perf_counter()
    printed: list[str] = []

    def log(line: str) -> None:
        printed.append(line)
        say(line)

    with atomic_dir(outdir, "demo") as tmp:
        corpus = prepare_corpus(tmp / "corpus", sizes["sentences"])
        log(f"== 0. corpus: {corpus['articles']} Wikipedia articles from gensim's test data; "
            f"train {corpus['train_tokens']:,} tokens ({corpus['train_sentences']:,} sentences), "
            f"validation {corpus['valid_tokens']:,} tokens (every 10th article)"
            + (" [--quick: cut short]" if quick else ""))
        train_lines = read_text(tmp / "corpus" / "train.txt")
        valid_lines = read_text(tmp / "corpus" / "valid.txt")
        vectors = train_vectors([line.split() for line in train_lines], tmp / "word2vec", sizes, log)

        log(f"\n== 2. LSTM language model ({sizes['layers']} × {sizes['hidden_size']}, input "
            f"embedding from the word vectors), {sizes['epochs']} epochs")
        start = time.perf_counter()
        trained = train_lm(tmp, sizes, seed, log, report)
        lm = trained.lm
        lm_seconds = time.perf_counter() - start
        # The best epoch's model, evaluated exactly as training evaluated it.
        lstm = lm.evaluate(valid_lines)
        kn = KneserNeyBigram(len(lm.vocab)).fit(lm.pipeline.encode(train_lines, lm.vocab))
        kn_ppl = kn.perplexity(lm.pipeline.start_ids(lm.vocab)
                               + lm.pipeline.encode(valid_lines, lm.vocab))
        log(f"   vocabulary {len(lm.vocab):,} words (count ≥ {sizes['min_count']}), "
            f"trained in {lm_seconds:.0f} s")
        log(f"   validation perplexity: LSTM {lstm['perplexity']:.1f}   vs   "
            f"Kneser–Ney bigram {kn_ppl:.1f}   ({lstm['tokens']:,} tokens)")
        if lstm["perplexity"] >= kn_ppl and not quick:
            log("   (the LSTM did not beat the bigram model this time)")

        result = lm.score(SENTENCE)
        table = format_table(result)
        log(f"\n== 3. P(w_t | <S>, w_1 … w_(t-1)) for one sentence\n{table}")
        with atomic_write(tmp / "score.txt") as f:
            f.write(f"{SENTENCE}\n\n{table}\n")

        log("\n== 4. samples (<unk> left out)")
        samples = {}
        for temperature in (1.0, 0.5):
            text = "the" + "".join(lm.write("the", length=60, temperature=temperature,
                                            seed=seed, avoid_unk=True))
            samples[str(temperature)] = text
            log(f"-- temperature {temperature}:\n{text.strip()}")
        with atomic_write(tmp / "samples.txt") as f:
            f.writelines(f"temperature {t}:\n{text.strip()}\n\n" for t, text in samples.items())

        summary = {"corpus": corpus, "word2vec": vectors, "quick": quick, "seed": seed,
                   "lm": {"vocab": len(lm.vocab), "settings": {k: sizes[k] for k in (
                          "hidden_size", "layers", "epochs", "bptt", "batch_size", "lr")},
                          "seconds": lm_seconds, "valid_ppl": lstm["perplexity"],
                          "valid_loss": lstm["loss"], "valid_tokens": lstm["tokens"],
                          "history": trained.history},
                   "kneser_ney": {"valid_ppl": kn_ppl, "discount": kn.D},
                   "lstm_beats_kneser_ney": lstm["perplexity"] < kn_ppl,
                   "sentence": {"text": SENTENCE, "logprob": result.logprob,
                                "perplexity": result.perplexity},
                   "samples": samples,
                   "seconds": time.perf_counter() - began}
        log(f"\ndone in {summary['seconds']:.0f} s; everything is in {outdir}/")
        with atomic_write(tmp / "summary.json") as f:
            json.dump(summary, f, indent=2)
        with atomic_write(tmp / "demo.txt") as f:
            f.write("\n".join(printed) + "\n")
    return summary

