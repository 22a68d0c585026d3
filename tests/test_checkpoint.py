import json

import pytest
import torch

from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.lm.checkpoint import (
    load_training,
    restore_optimizer,
    save_model,
)
from rnnlab.lm.model import LanguageModel
from rnnlab.text.vocab import Vocabulary

VOCAB = Vocabulary(["<unk>", "</s>", "a", "b", "c", "d"], specials=("<unk>", "</s>"))
CONFIG = {"level": "word", "mode": "stream", "lower": False}


def make(tie=True, cell="lstm", hidden=8, **decoder):
    torch.manual_seed(3)
    return LanguageModel(len(VOCAB), 6, hidden, 2, cell, tie_weights=tie, **decoder)


ADAPTIVE = dict(decoder="adaptive", cutoffs=[2, 4])


@pytest.mark.parametrize("tie,cell,hidden,decoder", [
    (True, "lstm", 6, {}), (True, "gru", 8, {}), (False, "peephole", 8, {}),
    (True, "lstm", 8, ADAPTIVE), (False, "gru", 8, {**ADAPTIVE, "tail_shrink": 2.0})])
def test_round_trip_gives_the_same_model(tmp_path, tie, cell, hidden, decoder):
    m = make(tie, cell, hidden, **decoder)
    save_model(tmp_path / "m", m, VOCAB, {**CONFIG, "epoch": 3})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json", "model.safetensors", "vocab.json"]
    lm = LM.load(tmp_path / "m")
    loaded, vocab, config = lm.model, lm.vocab, lm.config
    assert vocab == VOCAB and not loaded.training
    assert config["format"] == "rnnlab-lm" and config["version"] == 1
    assert config["epoch"] == 3 and config["model"] == m.config and config["level"] == "word"
    for (k, a), (k2, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    if tie:
        assert loaded.decoder.weight.data_ptr() == loaded.embedding.weight.data_ptr()
    x = torch.tensor([[2, 3], [4, 5]])
    torch.testing.assert_close(loaded(x)[0], m.eval()(x)[0], atol=0, rtol=0)
    # the decoder is recorded only when adaptive: folders saved before it load as full
    assert config["model"].get("decoder", "full") == decoder.get("decoder", "full")
    assert loaded.adaptive == bool(decoder)


def test_optimizer_state_round_trip(tmp_path):
    m = make()
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    for _ in range(2):
        opt.zero_grad()
        m(torch.tensor([[2], [3]]))[0].sum().backward()
        opt.step()
    rng = torch.get_rng_state()
    save_model(tmp_path / "last", m, VOCAB, CONFIG,
               training={"state": {"epoch": 2}, "tensors": {"rng": rng}, "optimizer": opt})
    state, tensors = load_training(tmp_path / "last")
    assert state["epoch"] == 2 and torch.equal(tensors["rng"], rng)
    m2 = LM.load(tmp_path / "last").model
    opt2 = torch.optim.Adam(m2.parameters(), lr=0.5)
    restore_optimizer(opt2, state, tensors)
    assert opt2.param_groups[0]["lr"] == 0.01
    for p, p2 in zip(m.parameters(), m2.parameters()):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[p][key], opt2.state[p2][key])


def test_saving_again_replaces_the_folder_whole(tmp_path):
    save_model(tmp_path / "m", make(), VOCAB, CONFIG, training={"state": {}, "tensors": {}})
    assert (tmp_path / "m" / "training.json").exists()
    save_model(tmp_path / "m", make(), VOCAB, CONFIG)
    assert not (tmp_path / "m" / "training.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folders left


def test_bad_folders_are_user_errors(tmp_path):
    with pytest.raises(RnnlabError, match="no such model folder"):
        LM.load(tmp_path / "missing")
    save_model(tmp_path / "m", make(), VOCAB, CONFIG)
    config_path = tmp_path / "m" / "config.json"
    good = json.loads(config_path.read_text())
    for change, message in [({"format": "other"}, "not an rnnlab language model"),
                            ({"version": 99}, "version 99"),
                            ({"model": dict(good["model"], hidden_size=5)}, "wrong shapes"),
                            ({"model": dict(good["model"], vocab_size=7)}, "expects 7")]:
        config_path.write_text(json.dumps(good | change))
        with pytest.raises(RnnlabError, match=message):
            LM.load(tmp_path / "m")
    config_path.write_text("{not json")
    with pytest.raises(RnnlabError, match="not valid JSON"):
        LM.load(tmp_path / "m")
    config_path.write_text(json.dumps(good))
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(RnnlabError, match="model.safetensors"):
        LM.load(tmp_path / "m")
    with pytest.raises(RnnlabError, match="no training state"):
        load_training(tmp_path / "m")
