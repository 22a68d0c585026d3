import itertools

import pytest
import torch

from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.lm.generate import allowed_distribution, draw, sample_token
from rnnlab.lm.model import LanguageModel
from rnnlab.text.pipeline import TextPipeline

LINES = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"]


def tiny(mode: str = "stream"):
    torch.manual_seed(0)
    pipeline = TextPipeline("word", mode, False)
    vocab = pipeline.build_vocab(LINES)
    model = LanguageModel(len(vocab), 8, 12, num_layers=2).eval()
    with torch.no_grad():
        model.decoder.weight.mul_(20)  # sharper distributions make greedy and beam differ
    return LM(model, vocab, pipeline)


def log_probs(model, ids: list[int]) -> torch.Tensor:
    """log P(next | ids) by a fresh forward pass over the whole prefix."""
    with torch.no_grad():
        logits, _ = model(torch.tensor(ids).view(-1, 1))
    return torch.log_softmax(logits[-1, 0].double(), -1)


def test_draws_follow_the_distribution_and_skip_zero_probabilities():
    probs = torch.tensor([0.0, 0.5, 0.0, 0.2, 0.3, 0.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(torch.tensor([draw(probs, g) for _ in range(20000)]), minlength=6)
    assert counts[[0, 2, 5]].sum() == 0
    assert (counts / 20000).tolist() == pytest.approx(probs.tolist(), abs=0.015)


def test_draw_at_the_very_top_of_the_cdf_still_has_mass(monkeypatch):
    # A uniform number that rounds up to the total must not fall on trailing zeros.
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.ones(1, dtype=k["dtype"]))
    assert draw(torch.tensor([0.0, 0.3, 0.7, 0.0, 0.0]), torch.Generator()) == 2


def test_top_k_never_leaves_the_k_most_probable():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(1))
    allowed = set(torch.topk(logits, 5).indices.tolist())
    g = torch.Generator().manual_seed(0)
    drawn = {sample_token(logits, g, temperature=2.0, top_k=5) for _ in range(2000)}
    assert drawn == allowed


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(2))
    p = torch.softmax(logits.double(), -1)
    probs, ids = allowed_distribution(logits, top_p=0.6)
    mass = p[ids].sum()
    assert mass >= 0.6 and mass - p[ids[-1]] < 0.6
    assert probs.sum() == pytest.approx(1.0)
    assert p[ids].min() >= p[[i for i in range(50) if i not in set(ids.tolist())]].max()
    g = torch.Generator().manual_seed(0)
    drawn = {sample_token(logits, g, top_p=0.6) for _ in range(2000)}
    assert drawn <= set(ids.tolist())


def test_temperature_sharpens():
    logits = torch.tensor([1.0, 2.0, 3.0])
    cold, _ = allowed_distribution(logits, temperature=0.5)
    assert cold.tolist() == pytest.approx(torch.softmax(logits.double() * 2, -1).tolist())


def test_same_seed_same_text():
    lm = tiny()
    a = list(lm.generate("the cat", length=30, seed=3))
    b = list(lm.generate("the cat", length=30, seed=3))
    c = list(lm.generate("the cat", length=30, seed=4))
    assert a == b and len(a) == 30 and a != c


def test_generation_leaves_grad_mode_alone_between_tokens():
    lm = tiny()
    tokens = lm.generate("the", length=3, seed=0)
    next(tokens)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    assert len(list(tokens)) == 2


def test_generated_tokens_respect_top_k():
    lm = tiny()
    model, vocab = lm.model, lm.vocab
    context = [vocab["</s>"], vocab["the"]]
    allowed = set(torch.topk(log_probs(model, context), 2).indices.tolist())
    firsts = {next(lm.generate("the", length=1, top_k=2, seed=s))
              for s in range(40)}
    assert {vocab[t] for t in firsts} == allowed


def test_beam_one_is_greedy():
    lm = tiny("sentence")
    model, vocab = lm.model, lm.vocab
    ids = [vocab["<s>"], vocab["the"]]
    greedy = []
    for _ in range(8):
        greedy.append(int(log_probs(model, ids + greedy).argmax()))
    beam = list(lm.generate("the", length=8, beam=1))
    assert beam == vocab.decode(greedy)
    assert list(lm.generate("the", length=8, top_k=1, seed=0)) == beam


def test_wide_beam_finds_the_most_probable_continuation():
    lm = tiny()
    model, vocab = lm.model, lm.vocab
    V, L = len(vocab), 3
    context = [vocab["</s>"], vocab["a"]]

    prefix = {(): log_probs(model, context)}  # one forward pass per prefix, not per sequence
    for seq in itertools.product(range(V), repeat=L - 1):
        for k in range(1, L):
            if seq[:k] not in prefix:
                prefix[seq[:k]] = log_probs(model, context + list(seq[:k]))

    def logp(seq):
        return sum(float(prefix[seq[:k]][seq[k]]) for k in range(L))

    best = max(itertools.product(range(V), repeat=L), key=logp)
    beam = list(lm.generate("a", length=L, beam=V * V))
    assert beam == vocab.decode(best)


def test_stop_at_end_of_sentence():
    lm = tiny("sentence")
    model, vocab = lm.model, lm.vocab
    with torch.no_grad():
        model.decoder.bias[vocab["</s>"]] = 5.0  # make the end likely
    out = list(lm.generate("the", length=200, seed=0, stop_at_eos=True))
    assert out[-1] == "</s>" and "</s>" not in out[:-1]
    beam = list(lm.generate("the", length=200, beam=3, stop_at_eos=True))
    assert beam[-1] == "</s>"


def test_avoid_unk():
    lm = tiny()
    model, vocab = lm.model, lm.vocab
    with torch.no_grad():
        model.decoder.bias[vocab.unk_id] = 8.0  # <unk> nearly certain
    assert "<unk>" in list(lm.generate("the", length=20, seed=0))
    for options in ({"seed": 0}, {"beam": 3}):
        out = list(lm.generate("the", length=20, avoid_unk=True, **options))
        assert len(out) == 20 and "<unk>" not in out


def test_unknown_prime_becomes_unk():
    lm = tiny()
    vocab = lm.vocab
    ids, unknown = lm.pipeline.encode_prompt("zebra giraffe", vocab)
    assert ids == [vocab.unk_id] * 2 and unknown == ["zebra", "giraffe"]
    assert len(list(lm.generate("zebra giraffe", length=5, seed=0))) == 5


@pytest.mark.parametrize("option", [{"temperature": 0}, {"temperature": -1}, {"top_p": 0},
                                    {"top_p": 1.5}, {"length": -1}, {"top_k": -2}, {"beam": -1}])
def test_bad_settings_raise_before_generating(option):
    lm = tiny()
    with pytest.raises(RnnlabError):
        lm.generate("the", **option)


def test_cli_generate(tmp_path, capsys):
    from rnnlab.cli import main
    tiny().save(tmp_path / "m")
    args = ["generate", str(tmp_path / "m"), "--prime", "the cat", "--length", "12", "--seed", "5"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first and first.startswith("the cat")
    assert main(["generate", str(tmp_path / "m"), "--prime", "zebra", "--length", "3",
                 "--beam", "2"]) == 0
    captured = capsys.readouterr()
    assert "<unk>" in captured.err and captured.out.startswith("zebra")
    for bad in (["--temperature", "0"], ["--top-p", "1.5"], ["--length", "-1"]):
        assert main(["generate", str(tmp_path / "m"), *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error" in err
