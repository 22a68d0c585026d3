"""Ready-made models: listed with their cards, found by name, shadowed by a local path."""

from __future__ import annotations

import json

import pytest

from rnnlab import ready
from rnnlab.cli import main
from rnnlab.lm import LM, LanguageModel, TextPipeline
from rnnlab.text.vocab import Vocabulary
from rnnlab.word2vec.vectors import WordVectors


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A ready-models folder holding one small model, `tiny`, with its card."""
    folder = tmp_path / "ready_models"
    vocab = Vocabulary(["<unk>", "\n", "a", "b"], specials=("<unk>",))
    LM(LanguageModel(4, 4, 4, 1), vocab, TextPipeline("char")).save(folder / "tiny")
    card = {"name": "tiny", "summary": "a character LSTM 1 x 4", "figures": {"valid bpc": 1.5}}
    (folder / "tiny" / "card.json").write_text(json.dumps(card))
    monkeypatch.setattr(ready, "READY_DIR", folder)
    return folder


def test_models_lists_name_size_and_figures(shipped, capsys):
    assert main(["models"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("tiny") and "MB" in line and "a character LSTM 1 x 4; valid bpc 1.5" in line
    assert main(["models", "tiny"]) == 0
    assert json.loads(capsys.readouterr().out)["figures"] == {"valid bpc": 1.5}
    assert main(["models", "huge"]) == 2
    assert "no ready-made model 'huge' (there are: tiny)" in capsys.readouterr().err


def test_a_name_resolves_to_the_shipped_model_and_a_local_path_wins(shipped, tmp_path,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ready.resolve("tiny") == shipped / "tiny"
    assert ready.resolve("missing") == ready.Path("missing")
    (tmp_path / "tiny").mkdir()
    heard = []
    assert ready.resolve("tiny", heard.append) == ready.Path("tiny")
    assert heard and "not the ready-made model" in heard[0]
    assert ready.resolve("./tiny", heard.append) == ready.Path("./tiny") and len(heard) == 1


def test_no_models_is_said_plainly(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ready, "READY_DIR", tmp_path / "none")
    assert main(["models"]) == 0
    assert capsys.readouterr().out == "no ready-made models in this installation\n"


def test_the_shipped_vectors_answer_by_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["similar", "wikitext2-vectors", "king", "--topn", "3"]) == 0
    assert "throne" in capsys.readouterr().out


def test_commands_take_a_ready_made_name(shipped, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "tiny", "--length", "5", "--seed", "1"]) == 0
    assert main(["score", "tiny", "ab"]) == 0
    capsys.readouterr()
    (tmp_path / "tiny").mkdir()  # a local folder of that name wins, and the command says so
    assert main(["score", "tiny", "ab"]) == 2
    err = capsys.readouterr().err
    assert "not the ready-made model" in err and "rnnlab score: error:" in err


def test_the_shipped_models_load_write_and_stay_small():
    models = {m.name: m for m in ready.ready_models()}
    assert set(models) == {"shakespeare", "shakespeare-rnn", "tang", "wikitext2", "wikitext2-vectors"}
    assert sum(m.size for m in models.values()) <= 40 * 2**20
    vectors = WordVectors.load(models.pop("wikitext2-vectors").path)
    assert len(vectors) == 20000 and vectors.vector_size == 100
    assert "throne" in [w for w, _ in vectors.most_similar("king", topn=5)]
    for m in models.values():
        assert m.card["figures"] and m.card["data"]["licence"] and m.card["sample"]["text"]
        lm = LM.load(m.path)
        assert len("".join(lm.write("", length=20, seed=1))) > 0
    tang = LM.load(models["tang"].path)
    poem = "".join(tang.write("", form=5, lines=4, seed=1))
    assert len(poem) == 24 and poem.endswith("。")
