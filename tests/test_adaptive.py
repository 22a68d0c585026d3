import pytest
import torch

from rnnlab.errors import RnnlabError
from rnnlab.lm.adaptive import (
    AdaptiveSoftmax,
    check_cutoffs,
    default_cutoffs,
    tail_sizes,
    weight_count,
)
from rnnlab.lm.data import IGNORE

V, SIZE, CUTOFFS = 30, 16, [4, 10, 22]


def decoder(tied: bool, dtype=torch.float32) -> AdaptiveSoftmax:
    torch.manual_seed(0)
    rows = torch.nn.Parameter(torch.empty(V, SIZE).uniform_(-0.5, 0.5)) if tied else None
    d = AdaptiveSoftmax(SIZE, V, CUTOFFS, shrink=2.0, tied=rows)
    with torch.no_grad():  # biases away from zero, so that a wrong slice shows
        d.bias.uniform_(-1, 1)
        d.clusters.bias.uniform_(-1, 1)
    return d.to(dtype)


def targets(shape) -> torch.Tensor:
    """Targets in every cluster, some IGNORE."""
    y = torch.randint(0, V, shape, generator=torch.Generator().manual_seed(1))
    y[0, 0] = IGNORE
    y[-1, -1] = V - 1
    return y


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_probabilities_are_normalised_over_the_vocabulary(tied, dtype):
    h = torch.randn(5, 3, SIZE, dtype=dtype)
    logp = decoder(tied, dtype)(h)
    assert logp.shape == (5, 3, V) and logp.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert torch.logsumexp(logp, -1).abs().max() < tol


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_the_loss_is_the_targets_gathered_from_the_log_probabilities(tied, dtype, tol):
    d = decoder(tied, dtype)
    h = torch.randn(6, 4, SIZE, dtype=dtype, requires_grad=True)
    y = targets((6, 4))
    loss = d.loss(h, y)
    real = y != IGNORE
    gathered = -d(h)[real].gather(1, y[real].unsqueeze(1)).sum()
    assert loss.dtype == dtype
    assert abs(loss.item() - gathered.item()) < tol * abs(gathered.item())
    # the same gradients, for the hidden outputs and for every weight
    grads = torch.autograd.grad(loss, [h, *d.parameters()])
    expected = torch.autograd.grad(gathered, [h, *d.parameters()])
    for g, e in zip(grads, expected):
        assert torch.allclose(g, e, atol=10 * tol, rtol=0)


def test_a_cluster_without_targets_gets_a_zero_gradient():
    # DistributedDataParallel needs a gradient for every weight at every step.
    d = decoder(tied=False)
    y = torch.tensor([0, 1, 3, IGNORE])  # the head's words alone
    d.loss(torch.randn(4, SIZE), y).backward()
    assert all(p.grad is not None for p in d.parameters())
    assert float(d.weights[2].grad.abs().sum()) == 0 and float(d.projections[1].weight.grad.abs().sum()) == 0
    assert float(d.weights[0].grad.abs().sum()) > 0


def test_untied_tails_shrink_tied_tails_are_the_embedding_rows():
    assert tail_sizes(SIZE, CUTOFFS, 2.0, tied=False) == [8, 4, 2]
    assert tail_sizes(SIZE, CUTOFFS, 2.0, tied=True) == [16, 16, 16]
    untied = decoder(tied=False)
    assert [tuple(w.shape) for w in untied.weights] == [(4, 16), (6, 8), (12, 4), (8, 2)]
    tied = decoder(tied=True)
    assert tied.weights is None
    assert tied.rows(2)[0].data_ptr() == tied.weight[10].data_ptr()
    for d, is_tied in ((untied, False), (tied, True)):
        own = sum(p.numel() for p in d.parameters()) - (V * SIZE if is_tied else 0)
        assert weight_count(SIZE, V, CUTOFFS, 2.0, is_tied) == own


def test_default_cutoffs_cover_85_percent_then_grow_by_four():
    # 5 words hold 850 of 1,000 tokens; 95 rarer words the rest
    counts = [170] * 5 + [2] * 55 + [1] * 40
    assert default_cutoffs(counts) == [5, 20]  # 80 is dropped: [80, 100) < [20, 80)
    assert default_cutoffs(counts + [0] * 300) == [5, 20, 80]  # 320: [320, 400) < [80, 320)
    assert default_cutoffs([5, 1]) == [1]
    assert default_cutoffs([9, 1, 0]) == [1]  # a head of 90 %, and the tail gets the rest
    with pytest.raises(RnnlabError, match="at least 2 tokens"):
        default_cutoffs([3])


@pytest.mark.parametrize("bad, needle", [
    ([], "increasing"), ([0, 3], "increasing"), ([5, 5], "increasing"), ([6, 2], "increasing"),
    ([2.5], "whole numbers"), ("4", "whole"), ([True], "whole"), ([4, 30], "below the vocabulary size 30"),
])
def test_cutoffs_are_checked(bad, needle):
    with pytest.raises(RnnlabError, match=needle):
        check_cutoffs(bad, V)
    with pytest.raises(RnnlabError, match="shrink"):
        AdaptiveSoftmax(SIZE, V, CUTOFFS, shrink=0.5)


@pytest.mark.parametrize("tied", [False, True])
def test_under_bf16_autocast_the_loss_is_float32(tied):
    d = decoder(tied)
    h, y = torch.randn(6, 4, SIZE), targets((6, 4))
    exact = d.loss(h, y).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = d.loss(h, y)
    assert mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(exact, rel=0.02)
