"""bench/lm_awd.py's budget planning: how many epochs (training, then fine-tuning) fit in a row's
minutes, at the slowest epoch's pace, and when an epoch's pace asks to plan again."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
lm_awd = pytest.importorskip("lm_awd")


def epochs(*seconds: float, finetune_from: int | None = None) -> list[dict]:
    """Epoch records taking `seconds` each, fine-tuning from epoch `finetune_from` on."""
    return [{"epoch": i, "seconds": s, "valid_loss": 5.0,
             **({"phase": "finetune"} if finetune_from and i >= finetune_from else {})}
            for i, s in enumerate(seconds, 1)]


def test_the_plan_fills_the_budget_at_the_slowest_pace_with_fine_tuning_last():
    assert lm_awd.plan(epochs(300), 3600, 4) == (8, 4)  # 1 + 3300 // 300 = 12 epochs
    assert lm_awd.plan(epochs(300, 400), 3600, 4) == (5, 4)  # 2 + 2900 // 400 = 9


def test_a_budget_that_ends_first_takes_fine_tuning_epochs_not_trained_ones():
    assert lm_awd.plan(epochs(*[300] * 10), 3100, 4) == (10, 0)
    assert lm_awd.plan(epochs(*[300] * 10), 3700, 4) == (10, 2)


def test_once_fine_tuning_started_only_its_count_changes_and_fills_the_budget():
    done = epochs(*[300] * 8, 500, finetune_from=9)
    assert lm_awd.plan(done, 3300, 4) == (8, 1)  # 2900 spent, 400 left: no 500-s epoch more
    assert lm_awd.plan(done, 3500, 4) == (8, 2)  # 600 left: one more
    assert lm_awd.plan(done, 6000, 4) == (8, 7)  # 3100 left: 6 more, beyond the 4 asked


def test_replan_asks_to_stop_when_a_slower_epoch_no_longer_fits(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text(json.dumps(epochs(300)[0]) + "\n")
    replan = lm_awd.Replan(tmp_path, 3600, 4)
    assert replan.planned == (8, 4)
    assert not replan("step", {})
    assert not replan("metrics", {"epoch": 2, "seconds": 300, "valid_loss": 5.0})  # on plan
    assert replan("metrics", {"epoch": 3, "seconds": 450, "valid_loss": 5.0})  # 12 no longer fit
    assert replan("step", {})  # and it stays asked until the trainer stops


def test_replan_grows_the_plan_only_while_training_epochs_remain(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text(json.dumps(epochs(400)[0]) + "\n")
    replan = lm_awd.Replan(tmp_path, 3600, 4)
    assert replan.planned == (5, 4)  # 1 + 3200 // 400
    assert not replan("metrics", {"epoch": 2, "seconds": 200, "valid_loss": 5.0})  # still 9
    assert replan("metrics", {"epoch": 3, "seconds": 200, "valid_loss": 5.0})  # 3 + 2800 // 400
    short = lm_awd.Replan(tmp_path, 1300, 1)
    assert short.planned == (2, 1)
    # One more would fit now, but the next epoch starts fine-tuning: the plan stands,
    assert not short("metrics", {"epoch": 2, "seconds": 100, "valid_loss": 5.0})
    # and grows once fine-tuning has started.
    assert short("metrics", {"epoch": 3, "seconds": 100, "valid_loss": 5.0, "phase": "finetune"})


def test_every_row_holds_valid_training_settings():
    from rnnlab.lm.settings import TrainSettings
    for name, (data, settings, minutes, finetune, _cap) in lm_awd.ROWS.items():
        TrainSettings(**settings)  # a misspelt setting raises here, not an hour into a run
        assert minutes > 0 and finetune >= 0 and set(data) >= {"train"}, name
    with pytest.raises(TypeError):
        TrainSettings(**dict(lm_awd.PTB_AVERAGED, dropout_word=0.1))
