import dataclasses

import pytest

from rnnlab.errors import RnnlabError
from rnnlab.lm.settings import RECIPES, TrainSettings, recipe_record, resumed_settings, with_recipe

# What --recipe awd must set (AWD-LSTM's PTB command, salesforce/awd-lstm-lm), the regularisers
# included: their settings come from another part of rnnlab and are checked once it is merged.
AWD = {"optimizer": "sgd", "lr": 30.0, "loss": "mean", "schedule": "constant", "clip": 0.25,
       "bptt": 70, "batch_size": 80, "variable_bptt": True, "asgd": True, "nonmono": 5,
       "weight_decay": 1.2e-6}
AWD_REGULARISERS = {"weight_drop": 0.5, "dropout_input": 0.4, "dropout_hidden": 0.25,
                    "dropout_output": 0.4, "dropout_words": 0.1, "ar": 2.0, "tar": 1.0}
KNOWN = {f.name for f in dataclasses.fields(TrainSettings)}


def test_the_awd_recipe_names_every_setting_with_its_value():
    assert RECIPES["awd"] == AWD | AWD_REGULARISERS


def test_the_recipe_fills_in_under_explicit_settings():
    s = TrainSettings(**with_recipe({"recipe": "awd", "split": (0.1, 0.1), "batch_size": 20,
                                     "asgd": False}))
    assert (s.batch_size, s.asgd) == (20, False)  # given explicitly: kept
    assert {k: getattr(s, k) for k in AWD if k not in ("batch_size", "asgd")} == {
        k: v for k, v in AWD.items() if k not in ("batch_size", "asgd")}
    assert (s.hidden_size, s.layers, s.epochs) == (None, 2, 13)  # not the architecture
    assert with_recipe({"lr": 2.0}) == {"lr": 2.0}
    record = recipe_record(s)["recipe"]
    assert record["name"] == "awd" and record["settings"]["batch_size"] == 20
    assert set(record["settings"]) == set(RECIPES["awd"]) & KNOWN
    assert recipe_record(TrainSettings()) == {}


@pytest.mark.skipif(not set(AWD_REGULARISERS) <= KNOWN,
                    reason="the regularisers' settings are not merged into this branch yet")
def test_the_recipe_sets_the_regularisers_once_they_exist():
    s = TrainSettings(**with_recipe({"recipe": "awd", "split": (0.1, 0.1)}))
    assert {k: getattr(s, k) for k in AWD_REGULARISERS} == AWD_REGULARISERS


@pytest.mark.parametrize("settings, needle", [
    ({"recipe": "zaremba"}, "recipe must be one of awd"),
    ({"nonmono": 0}, "nonmono must be at least 1"),
    ({"finetune": -1}, "finetune must not be negative"),
    ({"asgd": True}, "needs validation text"),
    ({"asgd": True, "split": (0.0, 0.1)}, "needs validation text"),
    ({"variable_bptt": True, "mode": "sentence"}, "stream mode"),
    ({"variable_bptt": "yes"}, "variable_bptt must be true or false"),
])
def test_schedule_settings_that_cannot_work_are_refused(settings, needle):
    with pytest.raises(RnnlabError, match=needle):
        TrainSettings(**with_recipe(settings))


def test_finetune_may_change_on_resume_but_the_schedule_may_not():
    state = {"train": "/t.txt", "settings": dataclasses.asdict(TrainSettings(split=(0.1, 0.1)))}
    _, s = resumed_settings(state, None, {"finetune": 3})
    assert s.finetune == 3
    with pytest.raises(RnnlabError, match="cannot change 'asgd'"):
        resumed_settings(state, None, {"asgd": True})
