"""Corpus registry, download, mirror and cache, run against a local HTTP server on 127.0.0.1."""

import gzip
import hashlib
import json
import re
import socket
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rnnlab import datasets
from rnnlab.cli import main
from rnnlab.datasets import CorpusInfo, RemoteFile, corpus_files
from rnnlab.errors import RnnlabError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHARED_NAMES = {"tang-poems": "chinese-poetry"}  # registry name -> folder in ../shared/data
TRAIN = b"".join(f"the cat sat on mat number {i} <eos>\n".encode() for i in range(5000))
VALID = "a small valid file, with non-ASCII: \u00e9\u00e8 \u4e2d\u6587\n".encode() * 50


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private cache, no mirror, no proxy, and any URL off 127.0.0.1 refused."""
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    real_urlopen = urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        assert urllib.parse.urlsplit(url).hostname == "127.0.0.1", url
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)


class Handler(BaseHTTPRequestHandler):
    """Serves `server.routes`; a path starting with /drop/ promises twice the bytes it sends."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.hits.append(self.path)
        body = self.server.routes.get(self.path.removeprefix("/drop"))
        if body is None:
            self.send_error(404)
            return
        dropped = self.path.startswith("/drop/")
        self.send_response(200)
        self.send_header("Content-Length", str(2 * len(body) if dropped else len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.routes = {"/train.txt": TRAIN, "/valid.txt": VALID}
    httpd.hits = []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def register(monkeypatch, train_url, valid_url, train_sha=None):
    """Put a two-file corpus 'tiny' into the registry for this test only."""
    corpus = CorpusInfo("tiny", "test corpus", "none", (
        RemoteFile("train", "train.txt", train_url, len(TRAIN), train_sha or sha(TRAIN)),
        RemoteFile("valid", "valid.txt", valid_url, len(VALID), sha(VALID)),
    ))
    monkeypatch.setitem(datasets.REGISTRY, "tiny", corpus)
    return corpus


@pytest.fixture
def tiny(server, monkeypatch):
    return register(monkeypatch, server.url + "/train.txt", server.url + "/valid.txt")


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def test_download_good_files_into_cache(tiny, server, tmp_path):
    paths = corpus_files("tiny")
    assert paths == {"train": tmp_path / "cache" / "tiny" / "train.txt",
                     "valid": tmp_path / "cache" / "tiny" / "valid.txt"}
    assert paths["train"].read_bytes() == TRAIN
    assert paths["valid"].read_bytes() == VALID
    assert sorted(server.hits) == ["/train.txt", "/valid.txt"]
    assert sorted(files_under(tmp_path / "cache")) == sorted(paths.values())  # no temp files left


def test_cache_hit_does_not_download_again(tiny, server):
    first = corpus_files("tiny", progress=False)
    assert corpus_files("tiny", progress=False) == first
    assert len(server.hits) == 2
    # a cached file that fails its checksum is replaced only when the user says so
    first["valid"].write_bytes(b"damaged")
    with pytest.raises(RnnlabError, match="does not match its SHA-256.*--overwrite"):
        corpus_files("tiny", progress=False)
    assert first["valid"].read_bytes() == b"damaged"
    assert corpus_files("tiny", progress=False, overwrite=True)["valid"].read_bytes() == VALID
    assert server.hits[2:] == ["/valid.txt"]


def test_wrong_checksum_leaves_nothing(server, monkeypatch, tmp_path):
    wrong = sha(b"something else")
    register(monkeypatch, server.url + "/train.txt", server.url + "/valid.txt", train_sha=wrong)
    with pytest.raises(RnnlabError, match=f"expected SHA-256 {wrong}, got {sha(TRAIN)}"):
        corpus_files("tiny", progress=False)
    assert files_under(tmp_path / "cache") == []
    assert not (tmp_path / "cache" / "tiny").exists()


def test_connection_dropped_mid_file_leaves_nothing(server, monkeypatch, tmp_path):
    register(monkeypatch, server.url + "/drop/train.txt", server.url + "/valid.txt")
    msg = f"connection closed after {len(TRAIN)} of {2 * len(TRAIN)} bytes"
    with pytest.raises(RnnlabError, match=msg):
        corpus_files("tiny", progress=False)
    assert files_under(tmp_path / "cache") == []


def test_http_404_leaves_nothing(server, monkeypatch, tmp_path):
    register(monkeypatch, server.url + "/nowhere.txt", server.url + "/valid.txt")
    with pytest.raises(RnnlabError, match="/nowhere.txt failed: HTTP 404"):
        corpus_files("tiny", progress=False)
    assert files_under(tmp_path / "cache") == []


def test_connection_refused_is_one_line_error(monkeypatch, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    register(monkeypatch, f"http://127.0.0.1:{port}/train.txt", f"http://127.0.0.1:{port}/valid.txt")
    with pytest.raises(RnnlabError, match="failed: .*refused") as e:
        corpus_files("tiny", progress=False)
    assert "\n" not in str(e.value)
    assert files_under(tmp_path / "cache") == []


def make_mirror(root: Path, train: bytes = TRAIN, with_valid: bool = True) -> Path:
    """A fake mirror laid out as shared/data: plain train, gzip-compressed valid."""
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "train.txt").write_bytes(train)
    if with_valid:
        with gzip.open(root / "tiny" / "valid.txt.gz", "wb") as f:
            f.write(VALID)
    return root


def test_mirror_plain_and_gz_are_used_without_download(tiny, server, tmp_path, monkeypatch):
    mirror = make_mirror(tmp_path / "mirror")
    expected = {"train": mirror / "tiny" / "train.txt", "valid": mirror / "tiny" / "valid.txt.gz"}
    assert corpus_files("tiny", data_dir=mirror, progress=False) == expected
    monkeypatch.setenv("RNNLAB_DATA", str(mirror))
    assert corpus_files("tiny", progress=False) == expected
    assert server.hits == []
    assert files_under(tmp_path / "cache") == []


def test_mirror_missing_file_falls_back_to_download(tiny, server, tmp_path):
    mirror = make_mirror(tmp_path / "mirror", with_valid=False)
    paths = corpus_files("tiny", data_dir=mirror, progress=False)
    assert paths["train"] == mirror / "tiny" / "train.txt"
    assert paths["valid"] == tmp_path / "cache" / "tiny" / "valid.txt"
    assert server.hits == ["/valid.txt"]


def test_corrupt_mirror_file_is_an_error(tiny, server, tmp_path):
    mirror = make_mirror(tmp_path / "mirror", train=TRAIN[:-1])
    with pytest.raises(RnnlabError, match=f"expected SHA-256 {sha(TRAIN)}, got {sha(TRAIN[:-1])}"):
        corpus_files("tiny", data_dir=mirror, progress=False)
    assert server.hits == []


def test_missing_mirror_folder_and_unknown_corpus(tmp_path):
    with pytest.raises(RnnlabError, match="does not exist"):
        corpus_files("ptb", data_dir=tmp_path / "nope")
    with pytest.raises(RnnlabError, match="unknown corpus 'nope'; known: .*ptb"):
        corpus_files("nope")


def test_no_download_when_not_allowed(tiny, server):
    with pytest.raises(RnnlabError, match="rnnlab data get tiny"):
        corpus_files("tiny", download_missing=False)
    assert server.hits == []


def test_cache_dir_precedence(monkeypatch, tmp_path):
    assert datasets.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("RNNLAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir() == tmp_path / "xdg" / "rnnlab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.cache_dir() == tmp_path / "home" / ".cache" / "rnnlab"


def test_sha256_file_hashes_decompressed_gz(tmp_path):
    with gzip.open(tmp_path / "x.gz", "wb") as f:
        f.write(VALID)
    assert datasets.sha256_file(tmp_path / "x.gz") == sha(VALID)
    (tmp_path / "bad.gz").write_bytes(gzip.compress(VALID)[:-10])
    with pytest.raises(RnnlabError, match="cannot read"):
        datasets.sha256_file(tmp_path / "bad.gz")


def test_registry_entries_are_well_formed():
    assert {"ptb", "wikitext-2", "tinyshakespeare"} <= set(datasets.REGISTRY)
    for name, corpus in datasets.REGISTRY.items():
        assert corpus.name == name and corpus.licence
        assert len({f.split for f in corpus.files}) == len(corpus.files)
        for f in corpus.files:
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f
            assert f.url.startswith("https://raw.githubusercontent.com/" if f.served else "https://"), f
            assert f.size > 0
        assert not corpus.derived or len(corpus.files) == 1


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
def test_registry_matches_shared_data():
    for corpus in datasets.REGISTRY.values():
        for f in corpus.files:
            plain = SHARED_DATA / SHARED_NAMES.get(corpus.name, corpus.name) / f.name
            path = plain if plain.exists() else plain.with_name(f.name + ".gz")
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (f.size, f.sha256), path


def test_cli_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for corpus in datasets.REGISTRY.values():
        assert corpus.licence in out
        for f in corpus.files:
            assert f.url in out and f.sha256 in out and f"{f.size:,}" in out
    assert "text8" not in out


def test_cli_get_then_path(tiny, server, tmp_path, capsys):
    assert main(["data", "path", "tiny"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["data", "get", "tiny", "--quiet"]) == 0
    cache = tmp_path / "cache" / "tiny"
    listing = f"train\t{cache / 'train.txt'}\nvalid\t{cache / 'valid.txt'}\n"
    assert capsys.readouterr().out == listing
    assert main(["data", "path", "tiny"]) == 0
    assert capsys.readouterr().out == listing
    assert main(["data", "path", "tiny", "--split", "valid"]) == 0
    assert capsys.readouterr().out == f"{cache / 'valid.txt'}\n"
    assert main(["data", "path", "tiny", "--split", "dev"]) == 2
    assert "no split 'dev'" in capsys.readouterr().err
    assert len(server.hits) == 2
    (cache / "train.txt").write_bytes(b"the user's own edit")
    assert main(["data", "get", "tiny", "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (cache / "train.txt").read_bytes() == b"the user's own edit"
    assert main(["data", "get", "tiny", "--quiet", "--overwrite"]) == 0
    assert (cache / "train.txt").read_bytes() == TRAIN


def test_cli_get_from_mirror_and_failure(server, monkeypatch, tmp_path, capsys):
    mirror = make_mirror(tmp_path / "mirror")
    register(monkeypatch, server.url + "/train.txt", server.url + "/valid.txt")
    assert main(["data", "get", "tiny", "--data-dir", str(mirror)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == f"valid\t{mirror / 'tiny' / 'valid.txt.gz'}"
    register(monkeypatch, server.url + "/drop/train.txt", server.url + "/valid.txt")
    assert main(["data", "get", "tiny", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnlab data: error: download of") and err.count("\n") == 1


def test_train_takes_a_corpus_by_name(tiny, server, tmp_path):
    """`rnnlab train --corpus NAME` finds the corpus's train and valid files itself."""
    import json

    mirror = make_mirror(tmp_path / "mirror")
    out = tmp_path / "m"
    assert main(["train", "--corpus", "tiny", "--data-dir", str(mirror), "-o", str(out),
                 "--layers", "1", "--hidden-size", "8", "--bptt", "5", "--batch-size", "8",
                 "--epochs", "1", "--max-steps", "5", "--no-progress", "--quiet"]) == 0
    metrics = json.loads((out / "best" / "config.json").read_text())
    assert "sat" in (out / "last" / "vocab.json").read_text(encoding="utf-8")
    assert "valid_loss" in metrics and server.hits == []
    assert main(["train", "x.txt", "--corpus", "tiny", "-o", str(tmp_path / "n")]) == 2


def test_embed_takes_a_corpus_by_name(tiny, server, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_DATA", str(make_mirror(tmp_path / "mirror")))
    out = tmp_path / "v.txt"
    assert main(["embed", "tiny", "-o", str(out), "--size", "4", "--epochs", "1",
                 "--min-count", "1", "--quiet"]) == 0
    words = {line.split()[0] for line in out.read_text().splitlines()[1:]}
    assert {"cat", "sat", "<eos>"} <= words and server.hits == []


def test_evaluate_takes_a_corpus_name_and_a_missing_split_is_one_line(tiny, server, tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.setenv("RNNLAB_DATA", str(make_mirror(tmp_path / "mirror")))
    (tmp_path / "t.txt").write_text("the cat sat on mat\n" * 50)
    assert main(["train", str(tmp_path / "t.txt"), "-o", str(tmp_path / "m"), "--layers", "1",
                 "--hidden-size", "8", "--epochs", "1", "--no-progress", "--quiet"]) == 0
    assert main(["evaluate", str(tmp_path / "m"), "tiny"]) == 2
    assert "corpus tiny has no test split (it has train, valid)" in capsys.readouterr().err


def test_a_corpus_name_fetches_only_the_split_it_needs(tiny, server, tmp_path):
    from rnnlab.datasets import file_or_corpus

    heard = []
    path = file_or_corpus("tiny", "valid", progress=lambda name, done, total: heard.append(name))
    assert path == str(tmp_path / "cache" / "tiny" / "valid.txt")
    assert server.hits == ["/valid.txt"]  # not the training file evaluate does not need
    assert heard and set(heard) == {"valid.txt"}
    with pytest.raises(RnnlabError, match="no dev split"):
        file_or_corpus("tiny", "dev")


POEMS = [f"春{i}風，夜{i}雨。" for i in range(400)]
POEM_TEXT = "".join(p + "\n" for p in POEMS + POEMS[:30] + [""]).encode()  # 30 repeats, a blank line


@pytest.fixture
def poems(monkeypatch):
    """A derived-split corpus whose one source file no URL serves, as tang-poems."""
    corpus = CorpusInfo("poems", "stand-in poems", "public domain",
                        (RemoteFile("source", "poems.txt", "https://example.org/poems.tgz",
                                    len(POEM_TEXT), sha(POEM_TEXT), served=False),), derived=True)
    monkeypatch.setitem(datasets.REGISTRY, "poems", corpus)
    return corpus


def test_derived_splits_from_a_mirror(poems, tmp_path, capsys):
    (tmp_path / "mirror" / "poems").mkdir(parents=True)
    (tmp_path / "mirror" / "poems" / "poems.txt.gz").write_bytes(gzip.compress(POEM_TEXT))
    paths = corpus_files("poems", data_dir=tmp_path / "mirror")
    folder = tmp_path / "cache" / "poems" / "splits"
    assert paths == {k: folder / f"{k}.txt" for k in ("train", "valid", "test")}
    split = {k: p.read_text(encoding="utf-8").splitlines() for k, p in paths.items()}
    assert sorted(sum(split.values(), [])) == sorted(POEMS)  # every poem once, repeats dropped
    assert 300 < len(split["train"]) < 400 and split["valid"] and split["test"]
    record = json.loads((folder / "splits.json").read_text(encoding="utf-8"))
    assert record["duplicates_dropped"] == 30 and record["source_sha256"] == sha(POEM_TEXT)
    assert {k: v["poems"] for k, v in record["files"].items()} == {k: len(v) for k, v in split.items()}
    # Kept while it matches its record; rebuilt, the same, when a file is missing or edited.
    mtime = paths["train"].stat().st_mtime_ns
    assert corpus_files("poems", data_dir=tmp_path / "mirror") == paths
    assert paths["train"].stat().st_mtime_ns == mtime
    paths["test"].unlink()
    paths["valid"].write_text("edited\n", encoding="utf-8")
    corpus_files("poems", data_dir=tmp_path / "mirror")
    assert {k: p.read_text(encoding="utf-8").splitlines() for k, p in paths.items()} == split
    assert datasets.file_or_corpus("poems", "test", tmp_path / "mirror") == str(paths["test"])
    assert main(["data", "path", "poems", "--data-dir", str(tmp_path / "mirror"), "--split", "valid"]) == 0
    assert capsys.readouterr().out == f"{paths['valid']}\n"


def test_unserved_file_missing_is_one_line(poems, tmp_path, capsys):
    assert main(["data", "get", "poems", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no URL serves it" in err and "poems.txt" in err
    assert files_under(tmp_path / "cache") == []


@pytest.mark.skipif(not (SHARED_DATA / "chinese-poetry").is_dir(), reason="../shared/data not present")
def test_tang_poems_splits_from_shared_data(tmp_path):
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "tang-poems").symlink_to(SHARED_DATA / "chinese-poetry")
    paths = corpus_files("tang-poems", data_dir=tmp_path / "mirror")
    split = {k: p.read_text(encoding="utf-8").splitlines() for k, p in paths.items()}
    record = json.loads((paths["train"].parent / "splits.json").read_text(encoding="utf-8"))
    assert sum(map(len, split.values())) + record["duplicates_dropped"] == 57_603
    assert record["duplicates_dropped"] == 952
    train, valid, test = (set(split[k]) for k in ("train", "valid", "test"))
    assert len(train) == len(split["train"]) and not (train & test or train & valid or valid & test)
    assert 0.89 < len(train) / (57_603 - 952) < 0.91
