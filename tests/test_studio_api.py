"""The studio's API in-process: every endpoint, bad input, limits, names and the guard."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest
import torch

pytest.importorskip("starlette", reason="the studio extra (starlette) is not installed")
pytest.importorskip("httpx2", reason="Starlette's TestClient needs httpx2")
from starlette.testclient import TestClient  # noqa: E402
from test_forms import form_regex  # noqa: E402

from rnnlab.cli import main  # noqa: E402
from rnnlab.lm import LM, LanguageModel, TextPipeline  # noqa: E402
from rnnlab.lm.units import saturation, units_like  # noqa: E402
from rnnlab.studio.app import create_app  # noqa: E402
from rnnlab.studio.generation import Jobs  # noqa: E402
from rnnlab.studio.params import MAX_LENGTH, MAX_TEXT_CHARS  # noqa: E402
from rnnlab.text.vocab import Vocabulary  # noqa: E402
from rnnlab.word2vec.vectors import WordVectors  # noqa: E402

WORDS = ["the", "cat", "sat", "on", "mat", "<img src=x onerror=alert(1)>"]


def tiny_lm(words=WORDS, level="word", hidden=8, layers=1, seed=0) -> LM:
    """An untrained model over `words`: enough to exercise every path."""
    pipeline = TextPipeline(level, "stream")
    vocab = Vocabulary(list(pipeline.specials) + words, specials=pipeline.specials)
    torch.manual_seed(seed)
    model = LanguageModel(len(vocab), hidden, hidden, layers).eval()
    return LM(model, vocab, pipeline)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio")
    tiny_lm().save(root / "words")
    tiny_lm(["\n", *"我爱北京天安门𠀋"], level="char", layers=2).save(root / "zh")
    run = root / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"epoch": 1, "valid_ppl": 12.5}\n{"epoch": 2, "valid_ppl": NaN}\n')
    rng = np.random.default_rng(0)
    vectors = WordVectors(["king", "queen", "man", "woman", "apple"],
                          rng.normal(size=(5, 4)).astype(np.float32))
    vectors.save(root / "vectors.txt")
    return root


@pytest.fixture(scope="module")
def app(folders):
    models = {"words": LM.load(folders / "words"), "zh": LM.load(folders / "zh")}
    vectors = {"vec": WordVectors.load(folders / "vectors.txt")}
    return create_app(models, vectors, {"run": folders / "run"})


@pytest.fixture
def client(app):
    return TestClient(app, base_url="http://127.0.0.1:8000")


def stream_events(response) -> list[dict]:
    return [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]


def test_page_and_static_files_are_served_with_security_headers(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script type="module" src="/static/app.js">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for name in ("app.js", "memory.js", "training.js"):  # app.js imports the other two
        script = client.get(f"/static/{name}")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        # Data reaches the page through textContent only.
        assert ".innerHTML" not in script.text and "insertAdjacentHTML" not in script.text
        assert "outerHTML" not in script.text and "document.write" not in script.text
    assert client.get("/api/models").headers["content-security-policy"]


def test_models_lists_each_model_by_name(client):
    listed = {m["name"]: m for m in client.get("/api/models").json()}
    assert listed["words"] == {"name": "words", "level": "word", "mode": "stream", "cell": "lstm",
                               "layers": 1, "hidden_size": 8, "vocab_size": len(WORDS) + 2}
    assert listed["zh"]["layers"] == 2 and listed["zh"]["level"] == "char"


def test_generate_streams_one_event_per_token_then_done(client):
    response = client.get("/api/generate", params={"model": "words", "prime": "the cat",
                                                   "length": 7, "seed": 3, "top_k": 4})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = stream_events(response)
    tokens, done = events[:-1], events[-1]
    assert len(tokens) == 7 and done == {"done": True, "tokens": 7, "seed": 3}
    for event in tokens:
        assert len(event["top"]) == 4  # top-k 4: the distribution it was drawn from
        assert event["token"] in dict(event["top"])
        assert event["prob"] == pytest.approx(dict(event["top"])[event["token"]])
        assert sum(p for _, p in event["top"]) == pytest.approx(1, abs=1e-3)
    again = stream_events(client.get("/api/generate", params={
        "model": "words", "prime": "the cat", "length": 7, "seed": 3, "top_k": 4}))
    assert [e["token"] for e in again[:-1]] == [e["token"] for e in tokens]


def test_generated_tokens_match_the_library_sampler(client, folders):
    lm = LM.load(folders / "words")
    events = stream_events(client.get("/api/generate", params={
        "model": "words", "prime": "the", "length": 12, "seed": 5, "temperature": 0.7}))
    assert [e["token"] for e in events[:-1]] == list(lm.generate("the", 12, 0.7, seed=5))
    assert "".join(e["piece"] for e in events[:-1]) == "".join(
        lm.write("the", length=12, temperature=0.7, seed=5))


@pytest.fixture(scope="module")
def tang_client():
    from rnnlab.ready import resolve

    lm = LM.load(resolve("tang"))
    return lm, TestClient(create_app({"tang": lm}), base_url="http://127.0.0.1:8000")


def poem_events(client, **params) -> tuple[str, list[dict]]:
    response = client.get("/api/generate", params={"model": "tang", **params})
    assert response.status_code == 200, response.text
    events = stream_events(response)
    assert events[-1]["done"] and events[-1]["tokens"] == len(events) - 1
    return "".join(e["piece"] for e in events[:-1]), events[:-1]


def test_poems_stream_token_by_token_like_the_library(tang_client):
    lm, client = tang_client
    poem, events = poem_events(client, form=5, lines=4, seed=3, top_k=20)
    assert form_regex(5, 4).fullmatch(poem), poem
    assert len(events) == 24  # one event per character and mark
    assert poem == "".join(lm.write("", form=5, lines=4, seed=3, top_k=20))
    comma = next(e for e in events if e["token"] == "，")
    assert comma["top"] == [["，", 1.0]]  # the form left one token: no masked ones listed
    poem, _ = poem_events(client, form=7, acrostic="春江花月", seed=1)
    assert form_regex(7, 4, "春江花月").fullmatch(poem), poem
    primed, _ = poem_events(client, form=5, prime="白日依山盡，", seed=2)
    assert form_regex(5, 4).fullmatch("白日依山盡，" + primed)


def test_a_branch_inside_a_poem_keeps_the_form(tang_client):
    lm, client = tang_client
    _, events = poem_events(client, form=5, lines=4, seed=3)
    # Branch at the third character: the first two as drawn, then the runner-up candidate.
    first, second, third = events[0], events[1], events[2]
    ids = f"{first['id']}.{second['id']}.{third['top_ids'][1]}"
    response = client.get("/api/generate", params={"model": "tang", "form": 5, "lines": 4,
                                                   "seed": 4, "ids": ids})
    branch = stream_events(response)
    assert branch[0] == {"branch": third["top"][1][0], "piece": third["top"][1][0]}
    poem = first["piece"] + second["piece"] + "".join(e["piece"] for e in branch[:-1])
    assert form_regex(5, 4).fullmatch(poem), poem
    assert branch[-1]["tokens"] == 24 - 3  # the rest of the poem, not a full one again
    broken = f"{first['id']}.{lm.vocab.stoi['。']}"  # a line of one character
    response = client.get("/api/generate", params={"model": "tang", "form": 5, "ids": broken})
    assert response.status_code == 400
    assert "does not fit the form" in response.json()["error"]


def test_poems_rhyme_and_convert_script(tang_client):
    pytest.importorskip("pypinyin")
    pytest.importorskip("opencc")
    from rnnlab.lm.rhyme import rhyme_of

    lm, client = tang_client
    poem, _ = poem_events(client, form=5, lines=4, rhyme="true", script="simplified", seed=5)
    assert form_regex(5, 4).fullmatch(poem) and rhyme_of(poem[10]) == rhyme_of(poem[22]), poem
    assert poem == "".join(lm.write("", form=5, rhyme=True, script="simplified", seed=5))


def test_write_view_has_the_poem_controls(client):
    page, script = client.get("/").text, client.get("/static/app.js").text
    for control in ("form", "lines", "acrostic", "rhyme", "script"):
        assert f'id="{control}"' in page and f'"{control}"' in script, control


@pytest.mark.parametrize("params, message", [
    ({"form": 6}, "form must be 5 or 7"),
    ({"form": "five"}, "'form' must be a number"),
    ({"form": 5, "lines": 3}, "lines must be 4 or 8"),
    ({"acrostic": "春a"}, "Han characters only"),
    ({"acrostic": "龘"}, "not in the model's vocabulary"),
    ({"rhyme": "1"}, "rhyme needs a form"),
    ({"rhyme": "maybe", "form": 5}, "'rhyme' must be true or false"),
    ({"script": "pinyin"}, "script must be simplified or traditional"),
    ({"form": 5, "prime": "白日，"}, "does not fit the form"),
])
def test_bad_poem_settings_are_one_line_400s(tang_client, params, message):
    response = tang_client[1].get("/api/generate", params={"model": "tang", **params})
    assert response.status_code == 400 and message in response.json()["error"]
    assert "\n" not in response.json()["error"]


def test_score_rows_total_and_unknown_tokens(client, folders):
    body = client.get("/api/score", params={"model": "words", "text": "the zebra sat"}).json()
    expected = LM.load(folders / "words").score("the zebra sat")
    assert [r["token"] for r in body["rows"]] == ["the", "zebra", "sat", "</s>"]
    assert [r["unknown"] for r in body["rows"]] == [False, True, False, False]
    assert body["oov"] == 1 and body["perplexity"] == pytest.approx(expected.perplexity)
    assert body["logprob"] == pytest.approx(expected.logprob)


def decode(array: dict) -> np.ndarray:
    data = np.frombuffer(base64.b64decode(array["float16"]), dtype="<f2")
    return data.reshape(array["shape"]).astype(np.float32)


def test_activations_return_one_layer_as_float16(client, folders):
    text = "我爱北京𠀋"
    body = client.get("/api/activations", params={"model": "zh", "text": text, "layer": 1}).json()
    acts = LM.load(folders / "zh").activations(text)
    assert body["tokens"] == acts.tokens == ["\n", *text]
    assert body["layer"] == 1 and set(body["arrays"]) == set(acts.layers[1]) == {"h", "C", "i", "f", "o"}
    for name, array in body["arrays"].items():
        np.testing.assert_allclose(decode(array), acts.layers[1][name], atol=2e-3)
    only_h = client.get("/api/activations", params={"model": "zh", "text": text, "kind": "h"}).json()
    assert list(only_h["arrays"]) == ["h"] and set(only_h["kinds"]) == {"h", "C", "i", "f", "o"}


def test_units_are_ranked_by_how_they_follow_the_marked_tokens(client, folders):
    text = "我爱北京天安门我爱北京"
    params = {"model": "zh", "text": text, "layer": 1, "kind": "C", "marked": "2-4,9", "topn": 5}
    body = client.get("/api/units", params=params).json()
    marked = np.zeros(len(text) + 1, dtype=bool)
    marked[[2, 3, 4, 9]] = True
    order, r = units_like(LM.load(folders / "zh").activations(text).layers[1]["C"], marked)
    assert body["units"] == order[:5].tolist() and body["r"] == pytest.approx(r[:5].tolist())
    assert body["kind"] == "C" and body["layer"] == 1


@pytest.mark.parametrize("marked, message", [
    ("", "mark some tokens"), ("0-11", "leave some unmarked"), ("3-99", "outside the 12 tokens"),
    ("a-b", "positions like 3-7,12"), ("5-2", "outside"),
])
def test_bad_marks_are_one_line_400s(client, marked, message):
    response = client.get("/api/units", params={"model": "zh", "text": "我爱北京天安门我爱北京",
                                                 "marked": marked})
    assert response.status_code == 400 and message in response.json()["error"]


def test_saturation_per_gate_and_unit(client, folders):
    text = "我爱北京天安门"
    body = client.get("/api/saturation", params={"model": "zh", "text": text}).json()
    shares = saturation(LM.load(folders / "zh").activations(text).layers[0])
    assert set(body["gates"]) == {"i", "f", "o"} and body["steps"] == len(text) + 1
    for gate, s in shares.items():
        assert body["gates"][gate]["closed"] == s[:, 0].tolist()
        assert body["gates"][gate]["open"] == s[:, 1].tolist()
    rnn = LM(LanguageModel(8, 4, 4, 1, cell="rnn").eval(), Vocabulary(["<unk>", "\n", *"abcdef"],
             specials=("<unk>",)), TextPipeline("char", "stream"))
    plain = TestClient(create_app({"rnn": rnn}), base_url="http://127.0.0.1")
    response = plain.get("/api/saturation", params={"model": "rnn", "text": "abc"})
    assert response.status_code == 400 and "no gates" in response.json()["error"]


def test_activations_of_a_thousand_tokens_stay_well_under_a_megabyte(tmp_path):
    lm = tiny_lm(hidden=200)
    client = TestClient(create_app({"big": lm}), base_url="http://127.0.0.1")
    text = " ".join(["the cat sat on the mat"] * 167)[:MAX_TEXT_CHARS]
    response = client.get("/api/activations", params={"model": "big", "text": text, "kind": "h"})
    assert len(response.json()["tokens"]) > 1000 and len(response.content) < 700_000


def test_memory_is_the_gradient_of_the_log_probability(client, folders):
    lm = LM.load(folders / "words")
    body = client.get("/api/memory", params={"model": "words", "text": "the cat sat on",
                                             "position": 3}).json()
    assert body["tokens"] == ["</s>", "the", "cat", "sat"] and len(body["norms"]) == 3
    # Finite differences along the gradient of e_1 ("the") give back its norm.
    ids = [lm.vocab.stoi[t] for t in body["tokens"]]

    def logp(shift: torch.Tensor) -> float:
        x = lm.model.embedding.weight[ids[:3]].detach().clone()
        x[1] += shift
        with torch.no_grad():
            out, _ = lm.model.rnn(x.unsqueeze(1).double().float())
            return float(torch.log_softmax(lm.model.decoder(out[-1, 0]), -1)[ids[3]])

    x = lm.model.embedding.weight[ids[:3]].detach().clone().requires_grad_()
    out, _ = lm.model.rnn(x.unsqueeze(1))
    (grad,) = torch.autograd.grad(torch.log_softmax(lm.model.decoder(out[-1, 0]), -1)[ids[3]], x)
    unit, eps = grad[1] / grad[1].norm(), 1e-2
    slope = (logp(eps * unit) - logp(-eps * unit)) / (2 * eps)
    assert body["norms"][1] == pytest.approx(slope, rel=0.05)
    assert min(body["norms"]) > 0


def test_vectors_neighbours_analogy_and_map(client, folders):
    wv = WordVectors.load(folders / "vectors.txt")
    near = client.get("/api/vectors/neighbours", params={"vectors": "vec", "word": "king", "topn": 2})
    assert near.json() == [list(p) for p in wv.most_similar("king", topn=2)]
    analogy = client.get("/api/vectors/analogy", params={"vectors": "vec", "a": "man", "b": "king",
                                                         "c": "woman", "topn": 1}).json()
    assert analogy == [list(p) for p in wv.analogy("man", "king", "woman", topn=1)]
    word_map = client.get("/api/vectors/map", params={"vectors": "vec", "words": "king,queen,man"}).json()
    assert word_map["words"] == ["king", "queen", "man"] and len(word_map["points"]) == 3
    unknown = client.get("/api/vectors/neighbours", params={"vectors": "vec", "word": "zebra"})
    assert unknown.status_code == 400 and "zebra" in unknown.json()["error"]


def test_vectors_are_listed_by_name(client):
    assert client.get("/api/vectors").json() == [{"name": "vec", "words": 5, "dim": 4, "counts": False}]


def test_doesnt_match_names_the_odd_word_out(client, folders):
    wv = WordVectors.load(folders / "vectors.txt")
    body = client.get("/api/vectors/doesnt_match", params={"vectors": "vec",
                                                           "words": "king, queen,man,apple"}).json()
    assert body["word"] == wv.doesnt_match(["king", "queen", "man", "apple"])
    assert [w for w, _ in body["scores"]] == ["king", "queen", "man", "apple"]
    assert min(body["scores"], key=lambda p: p[1])[0] == body["word"]


@pytest.mark.parametrize("params, status, message", [
    ({"words": "king"}, 400, "at least two words"),
    ({"words": "king,zebra"}, 400, "'zebra'"),
    ({"words": ",".join(["king"] * 101)}, 400, "at most 100 words"),
    ({"words": "king,queen", "vectors": "../vectors.txt"}, 404, "no word vectors named"),
])
def test_bad_doesnt_match_requests(client, params, status, message):
    response = client.get("/api/vectors/doesnt_match", params={"vectors": "vec", **params})
    assert response.status_code == status and message in response.json()["error"]


def clustered_vectors(n: int = 30, dim: int = 8, seed: int = 0) -> WordVectors:
    """Two well-separated clusters: a0..a{n-1} around +e0, b0..b{n-1} around -e0."""
    rng = np.random.default_rng(seed)
    centre = np.zeros(dim)
    centre[0] = 5
    rows = np.vstack([centre + rng.normal(size=(n, dim)), -centre + rng.normal(size=(n, dim))])
    return WordVectors([f"a{i}" for i in range(n)] + [f"b{i}" for i in range(n)], rows.astype(np.float32))


@pytest.fixture(scope="module")
def cluster_client():
    app = create_app({}, {"two": clustered_vectors(), "zh": WordVectors(
        ["北京", "上海", "猫", "狗"], np.eye(4, dtype=np.float32))})
    return TestClient(app, base_url="http://127.0.0.1")


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_map_of_the_most_frequent_words_separates_clusters(cluster_client, method):
    body = cluster_client.get("/api/vectors/map", params={"vectors": "two", "top": 60,
                                                          "method": method}).json()
    assert body["method"] == method and len(body["words"]) == len(body["points"]) == 60
    points = np.array(body["points"])
    a, b = points[:30], points[30:]
    gap = np.linalg.norm(a.mean(axis=0) - b.mean(axis=0))
    assert gap > 2 * max(a.std(axis=0).max(), b.std(axis=0).max())
    again = cluster_client.get("/api/vectors/map", params={"vectors": "two", "top": 60,
                                                           "method": method}).json()
    assert again == body  # seeded, and cached
    default = cluster_client.get("/api/vectors/map", params={"vectors": "two"}).json()
    assert len(default["words"]) == 60 and default["method"] == "pca"  # 300 asked, 60 there


@pytest.mark.parametrize("params, status, message", [
    ({"method": "umap"}, 400, "'method' must be one of pca, tsne"),
    ({"top": 1}, 400, "'top' must be between 2 and 1000"),
    ({"top": 1001}, 400, "'top' must be between 2 and 1000"),
    ({"words": ",".join(f"w{i}" for i in range(1001))}, 400, "at most 1000 words"),
    ({"words": "a0,zebra"}, 400, "'zebra'"),
    ({"vectors": "/tmp/two"}, 404, "no word vectors named"),
])
def test_bad_map_requests(cluster_client, params, status, message):
    response = cluster_client.get("/api/vectors/map", params={"vectors": "two", **params})
    assert response.status_code == status and message in response.json()["error"]


def parse_tsv(text: str) -> list[list[str]]:
    assert text.endswith("\n")
    return [line.split("\t") for line in text[:-1].split("\n")]


def test_projector_export_is_two_tsv_downloads(cluster_client):
    wv = clustered_vectors()
    vectors = cluster_client.get("/api/export/projector", params={"vectors": "two", "part": "vectors"})
    assert vectors.status_code == 200 and vectors.headers["content-type"].startswith("text/tab-separated")
    assert vectors.headers["content-disposition"].startswith("attachment;")
    assert 'filename="two-vectors.tsv"' in vectors.headers["content-disposition"]
    rows = parse_tsv(vectors.text)
    assert len(rows) == 60 and {len(r) for r in rows} == {8}
    np.testing.assert_allclose(np.array(rows, dtype=np.float32), wv.vectors, rtol=1e-6, atol=1e-6)
    metadata = cluster_client.get("/api/export/projector", params={"vectors": "two", "part": "metadata"})
    assert 'filename="two-metadata.tsv"' in metadata.headers["content-disposition"]
    assert metadata.text.split("\n")[:-1] == wv.index_to_key  # one column: no header
    top = cluster_client.get("/api/export/projector", params={"vectors": "two", "top": 5})
    assert len(parse_tsv(top.text)) == 5  # part=vectors by default
    zh = cluster_client.get("/api/export/projector", params={"vectors": "zh", "part": "metadata"})
    assert zh.content.decode("utf-8") == "北京\n上海\n猫\n狗\n"
    assert "filename*=UTF-8''zh-metadata.tsv" in zh.headers["content-disposition"]


@pytest.mark.parametrize("params, status, message", [
    ({"part": "labels"}, 400, "'part' must be one of vectors, metadata"),
    ({"top": 0}, 400, "'top' must be between 1 and 60"),
    ({"top": 61}, 400, "'top' must be between 1 and 60"),
    ({"vectors": "../two"}, 404, "no word vectors named"),
    ({"vectors": ""}, 404, "no word vectors named"),
])
def test_bad_projector_exports(cluster_client, params, status, message):
    response = cluster_client.get("/api/export/projector", params={"vectors": "two", **params})
    assert response.status_code == status and message in response.json()["error"]


def test_projector_labels_never_break_the_projectors_lines():
    from rnnlab.word2vec.projector import metadata_tsv, projector_label

    words = ["a\tb", "line\nbreak", "cr\r", " ", "\u3000", "\ufeff", "back\\slash", "猫", "<b>"]
    labels = [projector_label(w) for w in words]
    assert labels == ["a\\tb", "line\\nbreak", "cr\\r", "\\u0020", "\\u3000", "\\ufeff",
                      "back\\\\slash", "猫", "<b>"]
    wv = WordVectors(words, np.ones((len(words), 2), dtype=np.float32))
    lines = "".join(metadata_tsv(wv)).split("\n")[:-1]
    # As the Projector reads it: one line per word, none blank, no tab (which would be a header).
    assert len(lines) == len(words) and all(line.strip() and "\t" not in line for line in lines)


def test_activations_export_as_npz_holds_every_layer_and_kind(client, folders):
    import io

    text = "我爱北京𠀋"
    response = client.get("/api/export/activations", params={"model": "zh", "text": text, "format": "npz"})
    assert response.status_code == 200
    assert 'filename="zh-activations.npz"' in response.headers["content-disposition"]
    lm = LM.load(folders / "zh")
    acts = lm.activations(text)
    with np.load(io.BytesIO(response.content)) as npz:  # no pickles needed
        assert list(npz["tokens"]) == acts.tokens == ["\n", *text]
        assert list(npz["token_ids"]) == [lm.vocab.stoi[t] for t in acts.tokens]
        names = {f"layer{k}_{kind}" for k in range(2) for kind in ("h", "C", "i", "f", "o")}
        assert set(npz.files) == names | {"tokens", "token_ids"}
        for k in range(2):
            for kind, array in acts.layers[k].items():
                stored = npz[f"layer{k}_{kind}"]
                assert stored.dtype == np.float32 and stored.shape == (len(text) + 1, 8)
                np.testing.assert_allclose(stored, array, rtol=1e-6)
    default = client.get("/api/export/activations", params={"model": "words", "text": "the cat"})
    with np.load(io.BytesIO(default.content)) as npz:
        assert list(npz["tokens"]) == ["</s>", "the", "cat"] and npz["layer0_h"].shape == (3, 8)


def test_activations_export_as_lstmvis_project(client, folders):
    import io
    import zipfile

    h5py = pytest.importorskip("h5py")
    text = "我爱北京\n𠀋"
    response = client.get("/api/export/activations", params={"model": "zh", "text": text, "format": "hdf5"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert 'filename="zh-lstmvis.zip"' in response.headers["content-disposition"]
    lm = LM.load(folders / "zh")
    acts = lm.activations(text)
    with zipfile.ZipFile(io.BytesIO(response.content)) as z:
        assert sorted(z.namelist()) == ["zh/lstm.yml", "zh/states.h5", "zh/train.h5", "zh/words.dict"]
        with h5py.File(io.BytesIO(z.read("zh/states.h5"))) as states:
            assert set(states) == {f"{p}{k}" for k in (1, 2) for p in ("states", "output", "gate_i",
                                                                      "gate_f", "gate_o")}
            np.testing.assert_allclose(states["states2"][()], acts.layers[1]["C"], rtol=1e-6)
            np.testing.assert_allclose(states["output1"][()], acts.layers[0]["h"], rtol=1e-6)
        with h5py.File(io.BytesIO(z.read("zh/train.h5"))) as words:
            ids = words["word_ids"][()].tolist()
        # As LSTMVis reads the dictionary: "word id" per line, split at white space.
        entries = [line.split() for line in z.read("zh/words.dict").decode("utf-8").splitlines()]
        assert all(len(e) == 2 for e in entries) and len(entries) == len(lm.vocab)
        mapper = {int(i): w for w, i in entries}
        assert [mapper[i] for i in ids] == ["⏎", "我", "爱", "北", "京", "⏎", "𠀋"]
        config = z.read("zh/lstm.yml").decode("utf-8")
        assert "{type: state, layer: 2, path: states2}" in config
        assert "{type: output, layer: 1, path: output1}" in config and 'name: "zh"' in config


def test_activations_export_without_h5py_is_a_clear_400(client, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "h5py", None)
    response = client.get("/api/export/activations", params={"model": "words", "text": "the",
                                                             "format": "hdf5"})
    assert response.status_code == 400 and "needs h5py" in response.json()["error"]


@pytest.mark.parametrize("params, status, message", [
    ({"format": "csv"}, 400, "'format' must be one of npz, hdf5"),
    ({"text": "x" * (MAX_TEXT_CHARS + 1)}, 400, "longer than"),
    ({"text": None}, 400, "'text' is missing"),
    ({"model": "../words"}, 404, "no model named"),
    ({"model": "/tmp/words"}, 404, "no model named"),
])
def test_bad_activation_exports(client, params, status, message):
    query = {k: v for k, v in {"model": "words", "text": "the cat", **params}.items() if v is not None}
    response = client.get("/api/export/activations", params=query)
    assert response.status_code == status and message in response.json()["error"]


def test_training_returns_the_runs_records_with_nan_as_null(client):
    assert client.get("/api/training", params={"run": "run"}).json() == [
        {"epoch": 1, "valid_ppl": 12.5}, {"epoch": 2, "valid_ppl": None}]


def test_generate_events_carry_the_ids_of_the_token_and_of_its_alternatives(client, folders):
    lm = LM.load(folders / "words")
    events = stream_events(client.get("/api/generate", params={"model": "words", "length": 5,
                                                               "seed": 1, "top_k": 3}))
    for event in events[:-1]:
        assert event["id"] == lm.vocab.stoi[event["token"]]
        assert [lm.vocab.itos[i] for i in event["top_ids"]] == [t for t, _ in event["top"]]


def test_a_branch_continues_exactly_from_the_ids_after_the_prime(client, folders):
    from rnnlab.lm.generate import sample_ids

    lm = LM.load(folders / "words")
    stoi = lm.vocab.stoi
    # "</s>" (a line end) and the token with spaces would not survive being written out and
    # tokenised again: the ids are read as they are.
    after = [stoi["sat"], stoi["</s>"], stoi[WORDS[-1]], stoi["on"]]
    response = client.get("/api/generate", params={
        "model": "words", "prime": "the cat", "ids": ".".join(map(str, after)), "length": 6,
        "seed": 4, "top_k": 5})
    events = stream_events(response)
    assert events[0] == {"branch": "on", "piece": " on"}
    assert events[-1] == {"done": True, "tokens": 6, "seed": 4}
    context = lm.pipeline.start_ids(lm.vocab) + lm.vocab.encode(["the", "cat"]) + after
    expected = sample_ids(lm.model, context, 6, 1.0, 5, 1.0, 4, 0, None, None, None)
    assert [e["id"] for e in events[1:-1]] == list(expected)
    # The pieces continue the text so far, in which "</s>" started a line.
    written = "the cat sat\n" + WORDS[-1] + " on"
    tokens = [e["token"] for e in events[1:-1]]
    assert "".join(e["piece"] for e in events[1:-1]) == "".join(lm.pipeline.pieces(tokens, after=written))
    first_line = client.get("/api/generate", params={"model": "words", "ids": stoi["</s>"],
                                                     "length": 1, "seed": 0})
    assert stream_events(first_line)[0] == {"branch": "</s>", "piece": "\n"}


@pytest.mark.parametrize("ids", ["x", "1.x", "1..2", "1.", "99", "²", "1" * 12, "-1",
                                 ".".join(["1"] * (MAX_LENGTH + 1))])
def test_bad_branch_ids_are_one_line_400s(client, ids):
    response = client.get("/api/generate", params={"model": "words", "ids": ids, "length": 1})
    assert response.status_code == 400 and "'ids'" in response.json()["error"]


def test_tokens_lists_the_tokens_as_the_model_reads_them_and_where_they_are(client):
    body = client.get("/api/tokens", params={"model": "words", "text": "the Zebra  sat"}).json()
    assert body == {"tokens": ["</s>", "the", "<unk>", "sat"],
                    "spans": [None, [0, 3], [4, 9], [11, 14]]}
    text = "我爱北京𠀋"
    body = client.get("/api/tokens", params={"model": "zh", "text": text}).json()
    assert body["tokens"] == ["\n", *text]
    assert body["spans"] == [None, *([i, i + 1] for i in range(len(text)))]
    assert client.get("/api/tokens", params={"model": "words"}).status_code == 400


def test_runs_lists_the_runs_by_name(client):
    assert client.get("/api/runs").json() == [{"name": "run"}]


def test_training_sample_comes_from_the_latest_checkpoint_loaded_once(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    client = TestClient(create_app({}, runs={"run": run}), base_url="http://127.0.0.1")
    params = {"run": "run", "length": 12, "seed": 3}
    none_yet = client.get("/api/training/sample", params=params)
    assert none_yet.status_code == 404 and "no checkpoint yet" in none_yet.json()["error"]
    tiny_lm().save(run / "best", {"epoch": 1})
    loads = []
    original = LM.load.__func__
    monkeypatch.setattr(LM, "load", classmethod(lambda cls, path: (loads.append(path),
                                                                   original(cls, path))[1]))
    body = client.get("/api/training/sample", params=params).json()
    assert body["checkpoint"] == "best" and body["epoch"] == 1 and body["seed"] == 3
    assert body["text"] == "".join(tiny_lm().write("", length=12, seed=3))
    assert client.get("/api/training/sample", params=params).json() == body
    assert len(loads) == 1  # polling does not load the same checkpoint again
    tiny_lm(seed=1).save(run / "last", {"epoch": 2})
    newer = client.get("/api/training/sample", params=params).json()
    assert newer["checkpoint"] == "last" and newer["epoch"] == 2 and len(loads) == 2
    assert newer["text"] == "".join(tiny_lm(seed=1).write("", length=12, seed=3))
    too_long = client.get("/api/training/sample", params={**params, "length": 10_000})
    assert too_long.status_code == 400 and "'length' must be between" in too_long.json()["error"]


@pytest.mark.parametrize("path, params", [
    ("/api/tokens", {"text": "the"}),
    ("/api/score", {"text": "the"}),
    ("/api/generate", {"length": 2}),
    ("/api/activations", {"text": "the"}),
    ("/api/memory", {"text": "the cat", "position": 1}),
])
@pytest.mark.parametrize("name", ["nope", "../words", "/tmp/words", "..%2Fwords", "words/", ""])
def test_names_outside_the_tables_are_404(client, folders, path, params, name):
    response = client.get(path, params={"model": name, **params})
    assert response.status_code == 404 and "no model named" in response.json()["error"]


@pytest.mark.parametrize("path, key", [("/api/vectors/neighbours?word=king", "vectors"),
                                       ("/api/training?", "run"), ("/api/training/sample?", "run")])
def test_vectors_and_runs_by_path_are_404(client, folders, path, key):
    for name in ["../vectors.txt", str(folders / "vectors.txt"), str(folders / "run"), "run/.."]:
        response = client.get(f"{path}&{key}={name}")
        assert response.status_code == 404, name


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/%2e%2e/app.py",
                                  "/static/..%2f..%2fapp.py", "/static//etc/passwd", "/etc/passwd"])
def test_traversal_out_of_the_static_folder_is_404(client, path):
    response = client.get(path)
    assert response.status_code == 404 and "create_app" not in response.text


@pytest.mark.parametrize("params, message", [
    ({"length": MAX_LENGTH + 1}, "'length' must be between"),
    ({"length": "ten"}, "'length' must be a number"),
    ({"temperature": 0}, "'temperature' must be between"),
    ({"temperature": "nan"}, "'temperature' must be between"),
    ({"top_p": 1.5}, "'top_p' must be between"),
    ({"top_k": -1}, "'top_k' must be between"),
    ({"prime": "x" * (MAX_TEXT_CHARS + 1)}, "longer than"),
])
def test_bad_generation_settings_are_one_line_400s(client, params, message):
    response = client.get("/api/generate", params={"model": "words", **params})
    assert response.status_code == 400 and message in response.json()["error"]


@pytest.mark.parametrize("path, params, message", [
    ("/api/score", {}, "'text' is missing"),
    ("/api/score", {"text": " "}, "nothing to score"),
    ("/api/activations", {"text": "the", "layer": 1}, "'layer' must be between 0 and 0"),
    ("/api/activations", {"text": "the", "kind": "z"}, "'kind' must be one of h, C"),
    ("/api/memory", {"text": "the cat", "position": 3}, "position must be between 1 and 2"),
])
def test_bad_view_requests_are_one_line_400s(client, path, params, message):
    response = client.get(path, params={"model": "words", **params})
    assert response.status_code == 400 and message in response.json()["error"]


def test_generation_beyond_the_running_and_waiting_places_is_503(folders):
    jobs = Jobs(running=16, waiting=2)
    client = TestClient(create_app({"words": LM.load(folders / "words")}, jobs=jobs),
                        base_url="http://127.0.0.1")
    for _ in range(18):
        jobs.reserve()  # as 18 open streams would
    refused = client.get("/api/generate", params={"model": "words", "length": 1})
    assert refused.status_code == 503 and "try again" in refused.json()["error"]
    jobs.release()
    admitted = client.get("/api/generate", params={"model": "words", "length": 1})
    assert admitted.status_code == 200 and stream_events(admitted)[-1]["done"]
    assert jobs.admitted == 17  # the finished stream gave its place back


def test_sixteen_generations_run_at_once(folders):
    lm = LM.load(folders / "words")
    client = TestClient(create_app({"words": lm}), base_url="http://127.0.0.1")
    with client:
        streams = [client.stream("GET", "/api/generate", params={"model": "words", "length": 3})
                   for _ in range(16)]
        responses = [s.__enter__() for s in streams]
        assert [r.status_code for r in responses] == [200] * 16
        for stream, response in zip(streams, responses):
            assert stream_events(type("R", (), {"text": response.read().decode()})())[-1]["done"]
            stream.__exit__(None, None, None)


def test_a_client_that_disconnects_stops_its_generation(folders):
    """Driven as ASGI directly: the client goes away after 3 events of 500."""
    lm = LM.load(folders / "words")
    steps = []
    original = lm.step
    lm.step = lambda token, state: (steps.append(token), original(token, state))[1]
    app = create_app({"words": lm})
    sent, gone = [], asyncio.Event()

    async def receive():
        if not sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and len(sent) > 3:
            gone.set()

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
             "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/api/generate",
             "raw_path": b"/api/generate", "root_path": "",
             "query_string": b"model=words&length=500&seed=1",
             "headers": [(b"host", b"127.0.0.1:8000")], "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8000)}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    bodies = [m for m in sent if m["type"] == "http.response.body" and m.get("body")]
    assert sent[0]["status"] == 200 and 3 <= len(bodies) <= 5
    assert len(steps) <= 5  # not 500


# -- the guard ---------------------------------------------------------------------------------


def test_a_foreign_host_header_is_refused(client):
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example"):
        response = client.get("/api/models", headers={"host": host})
        assert response.status_code == 403 and "Host" in response.json()["error"]
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
        assert client.get("/api/models", headers={"host": host}).status_code == 200


def test_a_foreign_origin_is_refused_and_the_own_origin_admitted(client):
    foreign = client.get("/api/generate", params={"model": "words", "length": 1},
                         headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403 and "other sites" in foreign.json()["error"]
    assert foreign.headers["content-security-policy"]
    own = client.get("/api/generate", params={"model": "words", "length": 1},
                     headers={"origin": "http://127.0.0.1:8000"})
    assert own.status_code == 200
    assert client.post("/api/models").status_code == 405


def test_with_a_token_every_request_must_carry_it(folders):
    app = create_app({"words": LM.load(folders / "words")}, token="s3cret",
                     allowed_hosts=["127.0.0.1", "studio.lan"])
    client = TestClient(app, base_url="http://studio.lan:8000")
    for path in ("/", "/api/models", "/static/app.js", "/api/models?token=wrong"):
        response = client.get(path)
        assert response.status_code == 401 and "token" in response.json()["error"], path
    assert client.get("/api/models", headers={"authorization": "token s3cret"}).status_code == 200
    page = client.get("/?token=s3cret")
    assert page.status_code == 200 and "HttpOnly" in page.headers["set-cookie"]
    # The page's own requests then carry the cookie.
    assert client.get("/static/app.js").status_code == 200
    assert TestClient(app, base_url="http://evil.example").get("/?token=s3cret").status_code == 403


# -- the command -------------------------------------------------------------------------------


def test_studio_command_refuses_before_serving(folders, capsys, monkeypatch):
    from rnnlab import ready

    monkeypatch.setattr(ready, "READY_DIR", folders / "no-ready-models")
    assert main(["studio"]) == 2
    assert "model folder" in capsys.readouterr().err
    assert main(["studio", str(folders / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing" in err
    assert main(["studio", str(folders / "words"), "--run", str(folders / "words")]) == 2
    assert "not a training run" in capsys.readouterr().err
    assert main(["studio", str(folders / "words"), "--host", "0.0.0.0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert main(["studio", str(folders / "words"), "--vectors", str(folders / "nope.bin")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_studio_command_without_the_extra_says_what_to_install(folders, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["studio", str(folders / "words")]) == 2
    assert "pip install 'rnnlab[studio]'" in capsys.readouterr().err


def test_studio_without_arguments_opens_the_ready_made_models():
    from rnnlab.cli.studio import model_paths, vector_paths
    from rnnlab.ready import READY_DIR

    paths = model_paths([])
    assert {p.rsplit("/", 1)[-1] for p in paths} == {"shakespeare", "shakespeare-rnn", "tang",
                                                     "wikitext2"}
    assert model_paths(["tang"]) == [str(READY_DIR / "tang")]
    # The vectors too, but only when nothing at all is named.
    assert vector_paths([], ready=True) == [str(READY_DIR / "wikitext2-vectors")]
    assert vector_paths([], ready=False) == []
    assert vector_paths(["wikitext2-vectors"], ready=False) == [str(READY_DIR / "wikitext2-vectors")]
