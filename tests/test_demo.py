import bz2
import json
import math
import sys

import pytest

from rnnlab.demo import gensim_datapath, run_demo, wiki_articles, wiki_paragraphs
from rnnlab.errors import RnnlabError

MARKUP = """{{Infobox country|name={{lang|fr|France}}|capital=Paris}}
'''France''' is a country in [[Western Europe|western Europe]] with [[Paris]] as its \
capital.<ref name="a">A source, p. 1.</ref> It has many regions.<ref name="b"/>
== History ==
[[File:Map.png|thumb|A map with [[Paris]] on it]]
{| class="wikitable"
| a || b
|}
* a list item that is long enough to be a paragraph, but is a list item
The [http://example.org official site] says that it is &quot;big&quot; and <!-- hidden --> old.
[[Category:Countries]]
"""


def test_wiki_markup_becomes_prose():
    assert wiki_paragraphs(MARKUP) == [
        "France is a country in western Europe with Paris as its capital. It has many regions.",
        'The official site says that it is "big" and  old.',
    ]


def test_wiki_articles_skip_redirects_and_other_namespaces(tmp_path):
    ns = "http://www.mediawiki.org/xml/export-0.10/"
    pages = [("A", 0, "Alpha text."), ("B", 0, "#REDIRECT [[A]]"), ("Talk:A", 1, "Chat."),
             ("C", 0, "Gamma &amp; delta.")]
    xml = f'<mediawiki xmlns="{ns}">' + "".join(
        f"<page><title>{t}</title><ns>{n}</ns><revision><text>{x}</text></revision></page>"
        for t, n, x in pages) + "</mediawiki>"
    path = tmp_path / "dump.xml.bz2"
    path.write_bytes(bz2.compress(xml.encode()))
    assert list(wiki_articles(path)) == [("A", "Alpha text."), ("C", "Gamma & delta.")]


def test_without_gensim_the_demo_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gensim", None)
    with pytest.raises(RnnlabError, match=r"rnnlab\[demo\]"):
        gensim_datapath("anything")


def test_quick_demo_writes_every_artifact(tmp_path):
    pytest.importorskip("gensim")
    from rnnlab.lm import LM

    out = tmp_path / "demo"
    lines = []
    summary = run_demo(out, quick=True, say=lines.append)
    for name in ("corpus/train.txt", "corpus/valid.txt", "word2vec", "lm/best/config.json",
                 "lm/curve.png", "score.txt", "samples.txt", "summary.json", "demo.txt"):
        assert (out / name).exists(), name
    assert json.loads((out / "summary.json").read_text())["lm"]["vocab"] == summary["lm"]["vocab"]
    assert (out / "demo.txt").read_text() == "\n".join(lines) + "\n"
    assert math.isfinite(summary["lm"]["valid_ppl"]) and summary["kneser_ney"]["valid_ppl"] > 1
    lm = LM.load(out / "lm" / "best")
    assert lm.pipeline.lower  # user sentences are lowercased like the corpus
    again = lm.score(summary["sentence"]["text"])
    assert again.logprob == pytest.approx(summary["sentence"]["logprob"])
    assert set(summary["samples"]) == {"1.0", "0.5"}
    assert not list(tmp_path.glob(".demo*"))  # no temporary folder left behind
