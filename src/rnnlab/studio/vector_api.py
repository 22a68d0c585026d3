"""The studio's word-vector endpoints: list, neighbours, analogy, the odd one out, a 2-D map
(PCA or t-SNE, the latest maps cached) and the Embedding Projector's TSV files."""

from __future__ import annotations

from collections import OrderedDict

import anyio
import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from rnnlab.errors import RnnlabError
from rnnlab.studio import params
from rnnlab.word2vec.projector import metadata_tsv, vectors_tsv
from rnnlab.word2vec.vectors import WordVectors

MAX_MAP_WORDS = 1000  # exact t-SNE of 1,000 words takes seconds; more would be unreadable anyway
DEFAULT_MAP_WORDS = 300
MAX_MATCH_WORDS = 100
MAP_CACHE = 32  # maps kept, so that the page can come back to one without waiting again


class VectorHandlers:
    """The requests about the word vectors this studio serves, by name."""

    def __init__(self, vectors: dict[str, WordVectors]) -> None:
        self.vectors = vectors
        self.maps: OrderedDict[tuple, dict] = OrderedDict()

    def _vectors(self, request: Request) -> WordVectors:
        return params.named(self.vectors, request, "vectors", "word vectors")

    async def vectors_list(self, request: Request) -> JSONResponse:
        return JSONResponse([{"name": name, "words": len(wv), "dim": wv.vector_size,
                              "counts": wv.counts is not None}
                             for name, wv in self.vectors.items()])

    async def neighbours(self, request: Request) -> JSONResponse:
        wv, word = self._vectors(request), params.text(request, "word")
        topn = params.number(request, "topn", int, 10, 1, params.MAX_TOPN)
        return JSONResponse(wv.most_similar(word, topn=topn))

    async def analogy(self, request: Request) -> JSONResponse:
        wv = self._vectors(request)
        a, b, c = (params.text(request, name) for name in "abc")
        topn = params.number(request, "topn", int, 10, 1, params.MAX_TOPN)
        return JSONResponse(wv.analogy(a, b, c, topn=topn))

    async def doesnt_match(self, request: Request) -> JSONResponse:
        wv, words = self._vectors(request), params.words(request, "words")
        if len(words) > MAX_MATCH_WORDS:
            raise RnnlabError(f"doesnt_match takes at most {MAX_MATCH_WORDS} words, got {len(words)}")
        odd = wv.doesnt_match(words)
        # Each word's cosine with the mean direction: the odd one is the lowest.
        unit = wv.get_normed_vectors()[[wv.get_index(w) for w in words]]
        mean = unit.mean(axis=0)
        scores = unit @ (mean / max(float(np.linalg.norm(mean)), 1e-30))
        return JSONResponse({"word": odd, "scores": [[w, float(s)] for w, s in zip(words, scores)]})

    async def word_map(self, request: Request) -> JSONResponse:
        """A 2-D map of the given words, or else of the `top` most frequent, by PCA or t-SNE."""
        wv, words = self._vectors(request), params.words(request, "words")
        method = params.choice(request, "method", ("pca", "tsne"))
        if not words:
            top = params.number(request, "top", int, DEFAULT_MAP_WORDS, 2, MAX_MAP_WORDS)
            words = wv.index_to_key[:top]
        if len(words) > MAX_MAP_WORDS:
            raise RnnlabError(f"a map shows at most {MAX_MAP_WORDS} words, got {len(words)}")
        words = list(dict.fromkeys(words))  # a word given twice is one point
        key = (request.query_params.get("vectors"), method, tuple(words))
        if key not in self.maps:
            if method == "pca":
                coords, share = wv.pca(words)
                result = {"points": coords.tolist(), "share": share.tolist()}
            else:
                coords = await anyio.to_thread.run_sync(wv.tsne, words)
                result = {"points": coords.tolist(), "share": None}
            self.maps[key] = {"words": words, "method": method, **result}
            while len(self.maps) > MAP_CACHE:
                self.maps.popitem(last=False)
        self.maps.move_to_end(key)
        return JSONResponse(self.maps[key])

    async def export_projector(self, request: Request) -> StreamingResponse:
        """The vectors as the Embedding Projector's vectors.tsv or metadata.tsv (a download)."""
        name = request.query_params.get("vectors", "")
        wv = self._vectors(request)
        part = params.choice(request, "part", ("vectors", "metadata"))
        top = params.number(request, "top", int, None, 1, len(wv))
        chunks = (vectors_tsv if part == "vectors" else metadata_tsv)(wv, top)
        return StreamingResponse((c.encode("utf-8") for c in chunks),
                                 headers=params.download(f"{name}-{part}.tsv",
                                                   "text/tab-separated-values; charset=utf-8"))
