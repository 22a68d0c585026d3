"""bench/gpu_awd.sh: the full AWD-LSTM configuration through `rnnlab train`, run a few steps
on the CPU with small sizes (the flags after OUT override the script's)."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_awd.sh"


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env)


def test_the_script_trains_awd_lstm_with_the_recipe(tmp_path):
    rng = random.Random(1)
    words = [f"w{i}" for i in range(30)]
    (tmp_path / "ptb").mkdir()
    for name, n in (("train", 60), ("valid", 10), ("test", 10)):
        lines = [" ".join(rng.choices(words, k=8)) for _ in range(n)]
        (tmp_path / "ptb" / f"ptb.{name}.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    small = ["--device", "cpu", "--hidden-size", "12", "--embed-size", "6", "--bptt", "6",
             "--epochs", "1", "--finetune", "1", "--max-steps", "4", "--quiet"]
    done = run(str(tmp_path / "ptb"), str(out), *small)
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "last" / "config.json").read_text())
    model = config["model"]
    assert (model["num_layers"], model["hidden_size"], model["embed_size"]) == (3, 12, 6)
    assert model["tie_weights"] is True and model["cell"] == "lstm"
    assert config["recipe"]["name"] == "awd"
    state = json.loads((out / "last" / "training.json").read_text())
    s = state["settings"]
    assert (s["weight_drop"], s["lr"], s["asgd"], s["epochs"], s["finetune"]) == (
        0.5, 30.0, True, 1, 1)
    assert s["batch_size"] == 20  # the README's PTB command, not the recipe's 80
    assert state["global_step"] == 4
    again = run(str(tmp_path / "ptb"), str(out), "--resume", "--max-steps", "6", "--quiet")
    assert again.returncode == 0, again.stderr
    state = json.loads((out / "last" / "training.json").read_text())
    assert state["global_step"] == 6


def test_without_arguments_it_explains_itself():
    done = run()
    assert done.returncode == 2 and "bench/gpu_awd.sh PTB_DIR OUT" in done.stdout
