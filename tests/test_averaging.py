import pytest
import torch
from torch import nn

from rnnlab.lm.averaging import WeightAverage, nt_asgd_trigger


def test_nt_asgd_triggers_at_the_first_check_worse_than_the_best_nonmono_checks_back():
    losses = [5.0, 4.0, 3.0, 3.1, 3.2, 2.9, 3.05, 3.3]
    # check 7: 3.05 > 3.0, the best of checks 1..4 (more than 2 checks before it); check 5's
    # 3.2 is worse than check 3's 3.0 too, but that is only 2 checks back.
    fired = [nt_asgd_trigger(losses[:k], nonmono=2) for k in range(1, len(losses) + 1)]
    assert fired == [False] * 6 + [True, True]
    assert [nt_asgd_trigger(losses[:k], nonmono=1) for k in range(1, 6)] == [False] * 4 + [True]
    assert not nt_asgd_trigger([1.0, 2.0, 2.0, 1.0], nonmono=2)  # equal is not worse
    assert not nt_asgd_trigger([1.0, 2.0, 3.0, 4.0, 5.0], nonmono=5)  # too few checks yet


def steps(model: nn.Module, average: WeightAverage, values: list[float]) -> None:
    """Stand-ins for optimizer steps: set every weight to a value, then update the average."""
    for v in values:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(v)
        average.update()


def test_the_average_is_the_mean_of_the_weights_after_each_step_since_the_start():
    model = nn.Linear(3, 2)
    average = WeightAverage(model)
    assert not average.active
    with torch.no_grad():
        model.weight.fill_(9.0)  # the weights before the start do not count
    average.start(step=4)
    with average.swapped_in():  # no step yet: the weights themselves
        assert torch.all(model.weight == 9.0)
    average.start(step=4)
    steps(model, average, [1.0, 2.0, 6.0])
    with average.swapped_in():
        assert torch.all(model.weight == 3.0) and torch.all(model.bias == 3.0)
    assert torch.all(model.weight == 6.0)  # the raw weights come back
    assert average.to_json() == {"since": 4, "count": 3}


def test_the_average_resumes_from_its_saved_tensors():
    model, other = nn.Linear(2, 2), nn.Linear(2, 2)
    a, b = WeightAverage(model), WeightAverage(other)
    a.start(step=0)
    steps(model, a, [1.0, 2.0])
    b.restore(a.to_json(), a.tensors())
    assert sorted(a.tensors()) == ["average.bias", "average.weight"]
    steps(model, a, [4.5])
    steps(other, b, [4.5])
    assert torch.equal(a.mean["weight"], b.mean["weight"]) and b.mean["weight"][0, 0] == 2.5
    b.restore(None, {})
    assert not b.active and b.tensors() == {}


def test_frozen_weights_are_not_averaged():
    model = nn.Linear(2, 2)
    model.bias.requires_grad_(False)
    average = WeightAverage(model)
    average.start(step=0)
    assert list(average.tensors()) == ["average.weight"]


@pytest.mark.parametrize("lr", [0.1, 0.5])
def test_sgd_steps_with_the_average_match_the_iterates_mean(lr):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    average = WeightAverage(model)
    average.start(step=0)
    iterates = []
    for _ in range(20):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        average.update()
        iterates.append(model.weight.detach().clone())
    assert torch.allclose(average.mean["weight"], torch.stack(iterates).mean(0), atol=1e-6)
    assert not torch.allclose(average.mean["weight"], model.weight)
