"""--device: resolving names, bf16 autocast, and the commands that take the option."""

import copy

import numpy as np
import pytest
import torch

from rnnlab import diagnostics
from rnnlab.cli import main
from rnnlab.device import autocast, resolve_device
from rnnlab.errors import RnnlabError
from rnnlab.lm import LM
from rnnlab.lm.model import LanguageModel
from rnnlab.text.pipeline import TextPipeline

HAS_CUDA = torch.cuda.is_available()
HAS_MPS = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")

LINES = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"]


@pytest.fixture
def fp32_exact(monkeypatch):
    """Full float32 products on the GPU: torch lets cuDNN's recurrent kernels round to TF32."""
    monkeypatch.setattr(torch.backends.cudnn, "enabled", False)


def tiny(mode="stream", cell="lstm"):
    """A tiny untrained word model with sharp distributions (few near-ties), as an LM."""
    torch.manual_seed(0)
    pipeline = TextPipeline("word", mode, False)
    vocab = pipeline.build_vocab(LINES)
    model = LanguageModel(len(vocab), 8, 12, num_layers=2, cell=cell).eval()
    with torch.no_grad():
        model.decoder.weight.mul_(20)
    return LM(model, vocab, pipeline)


def saved_model(path, mode="stream"):
    """`tiny` written to `path` as a model folder."""
    lm = tiny(mode)
    lm.save(path)
    return lm


def test_auto_takes_cuda_when_present_else_the_cpu():
    assert resolve_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    assert resolve_device().type == resolve_device("").type == resolve_device("auto").type


def test_cpu_is_always_there():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_without_a_gpu_says_so(name):
    with pytest.raises(RnnlabError, match="no CUDA GPU is available.*use --device cpu"):
        resolve_device(name)


@pytest.mark.skipif(HAS_MPS, reason="this machine has an Apple GPU")
def test_mps_without_an_apple_gpu_says_so():
    with pytest.raises(RnnlabError, match="mps is not available"):
        resolve_device("mps")


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", "cuda:-1", "cuda:99", "cuda0"])
def test_nonsense_devices_are_user_errors(name):
    with pytest.raises(RnnlabError):
        resolve_device(name)


@pytest.mark.parametrize("name", ["cuda:x", "cuda:-1"])
@needs_cuda
@pytest.mark.cuda
def test_bad_cuda_index_is_named(name):
    with pytest.raises(RnnlabError, match="CUDA index"):
        resolve_device(name)


def test_bf16_autocast_runs_matrix_products_in_bfloat16():
    a, b = torch.randn(16, 32), torch.randn(32, 8)
    cpu = torch.device("cpu")
    with autocast(cpu, "bf16"):
        low = a @ b
    with autocast(cpu, "fp32"):
        full = a @ b
    assert low.dtype == torch.bfloat16 and full.dtype == torch.float32
    assert torch.equal(full, a @ b)
    assert torch.allclose(low.float(), full, rtol=0.05, atol=0.1) and not torch.equal(low.float(), full)


def test_unknown_precision_is_a_user_error():
    with pytest.raises(RnnlabError, match="fp32, bf16"):
        autocast(torch.device("cpu"), "fp16")


def test_load_model_takes_a_torch_device(tmp_path):
    model = saved_model(tmp_path / "m").model
    loaded = LM.load(tmp_path / "m", torch.device("cpu")).model
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), loaded.parameters()))


def test_model_commands_run_with_device_cpu(tmp_path, capsys):
    saved_model(tmp_path / "m")
    text = tmp_path / "valid.txt"
    text.write_text("the cat sat\nthe dog sat on the mat\n")
    m, cpu = str(tmp_path / "m"), ["--device", "cpu"]
    assert main(["evaluate", m, str(text), *cpu]) == 0
    assert "perplexity" in capsys.readouterr().out
    assert main(["score", m, "the cat sat", *cpu]) == 0
    assert "perplexity" in capsys.readouterr().out
    assert main(["generate", m, "--prime", "the", "--length", "5", "--seed", "1", *cpu]) == 0
    assert capsys.readouterr().out.startswith("the")
    assert main(["gradflow", "--model", m, "--text", "the cat", "-o", str(tmp_path / "g.png"),
                 *cpu]) == 0
    assert "3 tokens" in capsys.readouterr().out
    assert main(["gradflow", "--cells", "gru", "--length", "5", "--hidden-size", "4", "--batch-size", "1",
                 "-o", str(tmp_path / "h.png"), *cpu]) == 0


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("command", [
    ["evaluate", "{m}", "{m}/vocab.json"], ["score", "{m}", "the cat"], ["generate", "{m}"],
    ["gradflow", "--model", "{m}", "-o", "{m}-g.png"], ["gradflow", "-o", "{m}-g.png"],
])
def test_device_cuda_without_a_gpu_is_one_line_exit_2(tmp_path, capsys, command):
    saved_model(tmp_path / "m")
    args = [a.format(m=tmp_path / "m") for a in command]
    assert main([*args, "--device", "cuda"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "CUDA" in captured.err
    assert "Traceback" not in captured.err and not (tmp_path / "m" / "g.png").exists()


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("mode,cell", [("stream", "lstm"), ("sentence", "lstm"), ("sentence", "gru")])
def test_scores_on_cuda_equal_the_cpu(tmp_path, fp32_exact, monkeypatch, mode, cell):
    lm = tiny(mode, cell)
    gpu = LM(copy.deepcopy(lm.model).to("cuda"), lm.vocab, lm.pipeline)
    for text in ("the cat sat on the log", "a zebra"):
        on_cpu = lm.score(text)
        on_gpu = gpu.score(text)
        assert [r.id for r in on_gpu.rows] == [r.id for r in on_cpu.rows]
        assert [r.logprob for r in on_gpu.rows] == pytest.approx([r.logprob for r in on_cpu.rows],
                                                                  abs=1e-4)
    (tmp_path / "t.txt").write_text("\n".join(LINES[::-1]) + "\n")
    monkeypatch.setattr("rnnlab.lm.evaluation.EVAL_BPTT", 4)  # several blocks, state carried
    on_cpu = lm.evaluate(tmp_path / "t.txt", batch_size=2)
    on_gpu = gpu.evaluate(tmp_path / "t.txt", batch_size=2)
    assert on_gpu["tokens"] == on_cpu["tokens"]
    assert on_gpu["loss"] == pytest.approx(on_cpu["loss"], abs=1e-4)


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("mode", ["stream", "sentence"])
def test_generation_on_cuda_equals_the_cpu(fp32_exact, mode):
    lm = tiny(mode)
    gpu = LM(copy.deepcopy(lm.model).to("cuda"), lm.vocab, lm.pipeline)
    for options in ({"top_k": 1, "seed": 0}, {"beam": 3}, {"seed": 7, "temperature": 1.5},
                    {"seed": 7, "top_p": 0.9, "avoid_unk": True}):
        on_cpu = list(lm.generate("the cat", length=15, **options))
        on_gpu = list(gpu.generate("the cat", length=15, **options))
        assert on_gpu == on_cpu, options


@needs_cuda
@pytest.mark.cuda
def test_gradient_flow_on_cuda_equals_the_cpu():
    settings = {"length": 12, "hidden_size": 6, "input_size": 3, "batch": 2}
    cpu = diagnostics.sweep(["lstm", "gru"], [None, 1.5], **settings, device="cpu")
    gpu = diagnostics.sweep(["lstm", "gru"], [None, 1.5], **settings, device="cuda")
    for (label, a), (_, b) in zip(cpu, gpu):
        assert a.rho == pytest.approx(b.rho, rel=1e-12), label
        assert np.allclose(a.grad, b.grad, rtol=1e-9) and np.allclose(a.jac, b.jac, rtol=1e-9), label
        assert all(np.allclose(a.gates[g], b.gates[g], rtol=1e-9) for g in a.gates), label


@needs_cuda
@pytest.mark.cuda
def test_model_commands_run_on_cuda(tmp_path, capsys, monkeypatch):
    saved_model(tmp_path / "m")
    text = tmp_path / "valid.txt"
    text.write_text("the cat sat\nthe dog sat on the mat\n")
    m = str(tmp_path / "m")
    assert main(["evaluate", m, str(text), "--device", "cuda"]) == 0
    assert main(["score", m, "the cat sat", "--device", "cuda:0"]) == 0
    assert main(["gradflow", "--model", m, "-o", str(tmp_path / "g.png"), "--device", "cuda"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(torch.backends.cudnn, "enabled", False)  # see fp32_exact
    outputs = []
    for device in ("cpu", "cuda"):
        assert main(["generate", m, "--length", "12", "--seed", "3", "--device", device]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
