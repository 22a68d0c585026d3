"""The Huffman tree of hierarchical softmax: frequent words get short codes (word2vec.c)."""

from __future__ import annotations

import heapq

import numpy as np


def huffman_codes(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes and paths of every word: (codes uint8 (V, L), points int32 (V, L), lengths int32 (V,)).

    Word w's path runs from the root down: at step j it passes inner node points[w, j]
    (a row of the hierarchical-softmax output matrix, V - 1 rows) and turns codes[w, j].
    """
    V = len(counts)
    lengths = np.zeros(V, np.int32)
    if V < 2:
        return np.zeros((V, 1), np.uint8), np.zeros((V, 1), np.int32), lengths
    # Leaves are nodes 0..V-1, inner nodes V..2V-2; ties break by node id, so it is deterministic.
    heap = [(int(c), w) for w, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = np.zeros(2 * V - 1, np.int64)
    bit = np.zeros(2 * V - 1, np.uint8)
    for node in range(V, 2 * V - 1):
        c0, a = heapq.heappop(heap)
        c1, b = heapq.heappop(heap)
        parent[a], parent[b] = node, node
        bit[b] = 1
        heapq.heappush(heap, (c0 + c1, node))
    root = 2 * V - 2
    paths = []
    for w in range(V):
        path, node = [], w
        while node != root:
            path.append((bit[node], parent[node] - V))
            node = parent[node]
        paths.append(path[::-1])
    L = max(len(p) for p in paths)
    codes = np.zeros((V, L), np.uint8)
    points = np.zeros((V, L), np.int32)
    for w, path in enumerate(paths):
        lengths[w] = len(path)
        for j, (b, p) in enumerate(path):
            codes[w, j], points[w, j] = b, p
    return codes, points, lengths
