import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlab.errors import RnnlabError
from rnnlab.lm.data import IGNORE, pad_sentences
from rnnlab.lm.model import LanguageModel
from rnnlab.text.vocab import Vocabulary
from rnnlab.word2vec.vectors import WordVectors


def model(cell="lstm", **kw):
    torch.manual_seed(0)
    return LanguageModel(23, **{"embed_size": 6, "hidden_size": 8, "num_layers": 2,
                                "cell": cell, **kw}).eval()


@pytest.mark.parametrize("cell, decoder", [
    ("rnn", {}), ("lstm", {}), ("peephole", {}), ("coupled", {}), ("gru", {}), ("mogrifier", {}),
    ("lstm", dict(decoder="adaptive", cutoffs=[5, 12])),
    ("gru", dict(decoder="adaptive", cutoffs=[3], tie_weights=False)),
])
def test_step_matches_forward(cell, decoder):
    m = model(cell, **decoder)
    tokens = torch.randint(0, 23, (7, 3), generator=torch.Generator().manual_seed(1))
    logits, final = m(tokens)
    state = None
    for t in range(7):
        step_logits, state = m.step(tokens[t], state)
        torch.testing.assert_close(step_logits, logits[t], atol=1e-5, rtol=1e-5)
    for a, b in zip(state if isinstance(state, tuple) else (state,),
                    final if isinstance(final, tuple) else (final,)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_tied_weights_share_storage_with_and_without_projection():
    same = model(embed_size=8, hidden_size=8)
    assert same.projection is None
    assert same.decoder.weight.data_ptr() == same.embedding.weight.data_ptr()
    projected = model(embed_size=6, hidden_size=8)
    assert projected.projection.weight.shape == (6, 8)
    assert projected.decoder.weight.data_ptr() == projected.embedding.weight.data_ptr()
    # one tensor, so a gradient step on the decoder moves the embedding too
    logits, _ = projected(torch.tensor([[1], [2]]))
    logits.sum().backward()
    assert projected.embedding.weight.grad is projected.decoder.weight.grad
    untied = model(tie_weights=False)
    assert untied.decoder.weight.data_ptr() != untied.embedding.weight.data_ptr()
    assert untied.decoder.weight.shape == (23, 8)


@pytest.mark.parametrize("tie", [True, False])
def test_the_adaptive_decoder_gives_log_probabilities_and_the_loss_of_the_targets(tie):
    m = model(decoder="adaptive", cutoffs=[5, 12], tie_weights=tie, dropout=0.3)
    assert m.config["decoder"] == "adaptive" and m.config["cutoffs"] == [5, 12]
    assert "decoder" not in model().config  # a full model's config is as it always was
    x = torch.randint(0, 23, (6, 4), generator=torch.Generator().manual_seed(2))
    y = torch.roll(x, -1, 0)
    y[-1, :2] = IGNORE
    logp, _ = m(x)
    assert torch.logsumexp(logp, -1).abs().max() < 1e-6
    loss, _ = m(x, targets=y)
    expected = F.cross_entropy(logp.flatten(0, 1), y.flatten(), ignore_index=IGNORE,
                               reduction="sum")
    torch.testing.assert_close(loss, expected, atol=0, rtol=1e-5)


def test_adaptive_tying_shares_the_embedding_and_counts_it_once():
    tied = model(decoder="adaptive", cutoffs=[5, 12], embed_size=6, hidden_size=8)
    assert tied.decoder.weight is tied.embedding.weight
    rare = torch.tensor([[20], [21]])  # words of the last cluster
    loss, _ = tied(rare[:1], targets=rare[1:])
    loss.backward()
    # the tail's row of word 21 is its embedding row: the embedding's gradient there
    assert tied.embedding.weight.grad[21].abs().sum() > 0
    untied = model(decoder="adaptive", cutoffs=[5, 12], embed_size=6, hidden_size=8,
                   tie_weights=False, tail_shrink=2)
    assert untied.decoder.weight is None
    count = sum(p.numel() for p in tied.parameters())
    # untied: the words' own rows (5 x 8, 7 x 4, 11 x 2) instead of tied projections 6 -> 6
    # (2 x 36) and the 6 -> 8 projection above the top layer (48)
    assert sum(p.numel() for p in untied.parameters()) - count == (
        (40 + 28 + 22) + (8 * 4 + 8 * 2) + 2 * 2 - 72 - 48)
    with pytest.raises(RnnlabError, match="tied"):
        vocab, wv = vocab_and_vectors()
        tied.load_vectors(wv, vocab, freeze=True)


def test_init_range_bounds_every_parameter():
    m = model(init_range=0.05)
    for p in m.parameters():
        assert p.abs().max() <= 0.05
        assert p.abs().max() > 0.04  # actually drawn from the range, not left at zero


def test_padded_sentence_batch_equals_each_sentence_alone():
    m = model("gru")
    sentences = [[1, 5, 7, 2], [1, 9, 2], [1, 4, 4, 8, 6, 2]]
    x, y, lengths = pad_sentences(sentences)
    logits, _ = m(x, None, lengths)
    batch_loss = F.cross_entropy(logits.reshape(-1, 23), y.reshape(-1), ignore_index=IGNORE,
                                 reduction="sum")
    alone = 0.0
    for s in sentences:
        s = torch.tensor(s).view(-1, 1)
        out, _ = m(s[:-1])
        alone = alone + F.cross_entropy(out.reshape(-1, 23), s[1:].reshape(-1), reduction="sum")
    torch.testing.assert_close(batch_loss, alone)
    assert (y == IGNORE).sum() == 3 * 5 - 10


def vocab_and_vectors():
    vocab = Vocabulary(["<unk>", "</s>", "Paris", "cat", "Dog", "zebra"], specials=("<unk>", "</s>"))
    rng = np.random.default_rng(0)
    wv = WordVectors(["cat", "dog", "paris", "Paris", "mouse"], rng.normal(size=(5, 6)))
    return vocab, wv


def test_load_vectors_fills_matching_rows_exact_then_lowercase():
    vocab, wv = vocab_and_vectors()
    m = model(embed_size=6, hidden_size=6)
    before = m.embedding.weight.detach().clone()
    coverage = m.load_vectors(wv, vocab)
    E = m.embedding.weight.detach()
    np.testing.assert_array_equal(E[2].numpy(), wv.vectors[3])  # "Paris" exact, not "paris"
    np.testing.assert_array_equal(E[3].numpy(), wv.vectors[0])  # "cat"
    np.testing.assert_array_equal(E[4].numpy(), wv.vectors[1])  # "Dog" -> "dog"
    for row in (0, 1, 5):
        assert torch.equal(E[row], before[row])  # unmatched rows keep their random init
    assert coverage == {"matched": 3, "exact": 2, "lowercase": 1, "total": 6, "coverage": 0.5,
                        "frozen": False}
    assert m.embedding.weight.requires_grad


def test_frozen_vectors_and_dimension_mismatch():
    vocab, wv = vocab_and_vectors()
    m = model(embed_size=6, hidden_size=8, tie_weights=False)
    m.load_vectors(wv, vocab, freeze=True)
    assert not m.embedding.weight.requires_grad
    with pytest.raises(RnnlabError, match="dimension 6 but the embedding has 4"):
        model(embed_size=4).load_vectors(wv, vocab)
    with pytest.raises(RnnlabError, match="tied"):
        model(embed_size=6).load_vectors(wv, vocab, freeze=True)


def test_bad_settings_are_user_errors():
    with pytest.raises(RnnlabError, match="unknown cell"):
        LanguageModel(10, cell="transformer")
    with pytest.raises(RnnlabError, match="dropout"):
        LanguageModel(10, dropout=1.0)
    for name in ("dropout_input", "dropout_hidden", "dropout_output", "dropout_words", "weight_drop"):
        with pytest.raises(RnnlabError, match=rf"{name} must be in \[0, 1\), got -0.1"):
            LanguageModel(10, **{name: -0.1})
    with pytest.raises(RnnlabError, match="decoder must be one of full, adaptive"):
        LanguageModel(10, decoder="hierarchical")
    with pytest.raises(RnnlabError, match="needs cutoffs"):
        LanguageModel(10, decoder="adaptive")
    with pytest.raises(RnnlabError, match="below the vocabulary size 10"):
        LanguageModel(10, decoder="adaptive", cutoffs=[4, 10])


@pytest.mark.parametrize("update", ["optimizer", "load_state_dict"])
def test_step_sees_decoder_updates(update):
    """step() caches the transposed decoder; any change to the weight must reach it."""
    torch.manual_seed(0)
    model = LanguageModel(12, 6, 6, 1, tie_weights=False).eval()
    token = torch.tensor([3])
    model.step(token)
    if update == "optimizer":
        model.decoder.weight.grad = torch.ones_like(model.decoder.weight)
        torch.optim.SGD(model.parameters(), lr=0.5).step()
    else:
        state = {k: v + 1 for k, v in model.state_dict().items()}
        model.load_state_dict(state)
    logits, _ = model.step(token)
    expected, _ = model(token.view(1, 1))
    assert torch.allclose(logits, expected[0], atol=1e-6)
