"""The exact top-k kernel: cosine nearest neighbours among a point-in-time prefix of rows.

Vectors are L2-normalized float32, so cosine = dot. :func:`exact_topk` is a float32 matrix
product plus a lower bound of each row's k-th best score (from group maxima, no partition of
whole rows), then the few candidates within 2.5e-6 of it are re-scored in float64 and
ordered by (similarity desc, row asc): the result equals an exact
float64 brute force, ties broken towards the earliest row (the earliest-known outcome, since
the index keeps rows sorted by the time their outcome became known).

``limits`` restrict each query to a prefix of the rows (what it may know). Narrow prefixes are
scored in blocks of queries sorted by limit; wide ones (walk-forward batches over a large
library) in blocks scanning their prefix in growing chunks with a running threshold. Small
float32 GEMMs run on one BLAS thread (see :func:`one_blas_thread`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = ["exact_topk", "one_blas_thread"]

_EPS = 2.5e-6  # > 2x the float32 rounding of a 16-term dot product of unit vectors (~1e-6)
_EXTRA = 16  # float32 candidates kept beyond k so near-ties can be settled in float64
_DIRECT_CELLS = 1 << 22  # score cells computed in one go before switching to chunks
_BLOCK = 128  # queries per block in the chunked kernel
_FIRST_CHUNK = 1024  # library rows in a block's first chunk (then doubling up to _MAX_CHUNK)
_MAX_CHUNK = 8192
_PREFIX_BLOCK = 64  # queries per block when their prefixes differ (narrow prefixes)
_GROUP = 16  # most score cells per group of the k-th best's lower bound (:func:`_direct`)
_NEVER = np.iinfo(np.int64).max  # as-of "no restriction"
_SINGLE_ROWS = 1 << 16  # a single query over at most this many rows: :func:`_single`


@functools.cache
def _blas_controller() -> Any:
    return ThreadpoolController()  # built once: it inspects every loaded native library


def one_blas_thread() -> Any:
    """Small float32 GEMMs run fastest on one BLAS thread; OpenBLAS' spinning worker threads
    make them 5-20x slower when other processes share the cores."""
    return _blas_controller().limit(limits=1, user_api="blas")


def _cosines(queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Float64 cosines (m, w) of queries (m, d) with their candidate rows (m, w, d): the one
    re-scoring every exact result comes from (the rows' own norms are divided out)."""
    rows = rows.astype(np.float64)
    q = queries.astype(np.float64)
    norms = np.sqrt(np.einsum("mwd,mwd->mw", rows, rows) * np.einsum("md,md->m", q, q)[:, None])
    return np.einsum("mwd,md->mw", rows, q) / np.where(norms > 0, norms, 1.0)


def _finish(queries: np.ndarray, matrix: np.ndarray, cand: np.ndarray, k: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Top k per query among its candidate rows ``cand`` (m, w), -1 padded, by float64 cosine
    (the stored rows' own norms, within float32 rounding of 1, are divided out); ties by row."""
    m = queries.shape[0]
    out_s, out_i = np.full((m, k), -np.inf), np.full((m, k), -1, np.int64)
    for s0 in range(0, m, 2048):  # bounded temporaries: (2048, w, 16) float64
        c = cand[s0:s0 + 2048]
        valid = c >= 0
        sims = _cosines(queries[s0:s0 + 2048], matrix[np.maximum(c, 0)])
        sims[~valid] = -np.inf
        order = np.lexsort((np.where(valid, c, _NEVER), -sims), axis=1)[:, :k]
        width = order.shape[1]
        out_s[s0:s0 + 2048, :width] = np.take_along_axis(sims, order, axis=1)
        out_i[s0:s0 + 2048, :width] = np.take_along_axis(c, order, axis=1)
    out_i[np.isneginf(out_s)] = -1
    return out_s, out_i


def _lists(r: np.ndarray, c: np.ndarray, m: int) -> np.ndarray:
    """Columns ``c`` of rows ``r`` (ascending) as (m, max count) lists, -1 padded."""
    counts = np.bincount(r, minlength=m)
    out = np.full((m, max(int(counts.max()) if r.size else 0, 1)), -1, np.int64)
    out[r, np.arange(r.size) - np.concatenate(([0], np.cumsum(counts)[:-1]))[r]] = c
    return out


def _direct(queries: np.ndarray, matrix: np.ndarray, limits: np.ndarray, k: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """All scores at once; candidates = every score within _EPS of a floor <= the row's k-th
    best, re-scored in float64 by :func:`_finish`.

    No partition of whole rows: a row's cells are split into g groups of ``size`` <= _GROUP
    (group j: columns j, j + g, j + 2g, ...; g >= 8k); the k-th largest group maximum is <= the
    k-th largest score (k groups each hold a cell at least that large), so it is a valid floor,
    and only groups whose maximum reaches it can hold a candidate: about k of thousands. The
    cells above it are the k best plus the few sharing a group with a better one."""
    m = queries.shape[0]
    width = int(limits.max())
    size = max(1, min(_GROUP, width // (8 * k)))  # >= 8k groups: few cells pass the floor
    groups = -(-width // size)
    scores = np.empty((m, groups * size), np.float32)
    np.matmul(queries.astype(np.float32), matrix[:width].T, out=scores[:, :width])
    scores[:, width:] = -np.inf
    low = int(limits.min())
    if low < width:  # cells beyond each query's prefix (a staircase when sorted by limit)
        tail = scores[:, low:width]
        tail[np.arange(low, width)[None, :] >= limits[:, None]] = -np.inf
    cells = scores.reshape(m, size, groups)
    best = cells.max(axis=1)
    floor = _floor(best, k)
    r, j = np.nonzero(best >= floor[:, None])
    near = cells[r, :, j]  # (groups kept, size) scores
    keep = near >= floor[r, None]
    cols = j[:, None] + groups * np.arange(size)
    return _finish(queries, matrix, _lists(np.broadcast_to(r[:, None], keep.shape)[keep],
                                           cols[keep], m), k)


def _floor(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the k-th largest score less _EPS (float32); the smallest finite float32 when
    the row has fewer than k finite scores (every visible cell is then a candidate)."""
    floor = np.full(scores.shape[0], np.finfo(np.float32).min, np.float32)
    if scores.shape[1] > k:
        # the k-th largest as the k-th smallest of the negated scores: introselect from the
        # top is 5x slower when a row holds many -inf (cells beyond the query's prefix)
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
        known = np.isfinite(kth)
        floor[known] = (kth - _EPS)[known]
    return floor


def _merge(top_s: np.ndarray, top_c: np.ndarray, scores: np.ndarray, tau: np.ndarray,
           c0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge a chunk's scores (B, w) into the running float32 top lists (B, keep)."""
    b, w = scores.shape
    mask = scores > tau[:, None]
    if w % 8 == 0:  # skip all-zero 8-byte words: most of the mask is False after warm-up
        words = np.flatnonzero(mask.reshape(-1).view(np.uint64))
        flat = (words[:, None] * 8 + np.arange(8)).ravel()
        flat = flat[mask.reshape(-1)[flat]]
    else:
        flat = np.flatnonzero(mask)
    if flat.size == 0:
        return top_s, top_c, tau
    r, c = np.divmod(flat, w)
    counts = np.bincount(r, minlength=b)
    rank = np.arange(r.size) - np.concatenate(([0], np.cumsum(counts)[:-1]))[r]
    pad_s = np.full((b, int(counts.max())), -np.inf, np.float32)
    pad_c = np.full(pad_s.shape, -1, np.int64)
    pad_s[r, rank] = scores[r, c]
    pad_c[r, rank] = c + c0
    all_s = np.concatenate([top_s, pad_s], axis=1)
    all_c = np.concatenate([top_c, pad_c], axis=1)
    keep = top_s.shape[1]
    part = np.argpartition(-all_s, keep - 1, axis=1)[:, :keep]
    top_s = np.take_along_axis(all_s, part, axis=1)
    return top_s, np.take_along_axis(all_c, part, axis=1), top_s.min(axis=1)


def _chunked(queries: np.ndarray, matrix: np.ndarray, limits: np.ndarray, k: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of queries (sorted by limit) scan their prefix in growing chunks, keeping the
    k + _EXTRA best float32 scores; rows whose margin is too thin are redone directly."""
    m = queries.shape[0]
    keep = k + _EXTRA
    order = np.argsort(limits, kind="stable")
    found = np.full((m, keep), -1, np.int64)
    unsettled = []
    buf = np.empty((_BLOCK, _MAX_CHUNK), np.float32)
    for b0 in range(0, m, _BLOCK):
        rows = order[b0:b0 + _BLOCK]
        lim = limits[rows]
        qb = np.ascontiguousarray(queries[rows], dtype=np.float32)
        top_s = np.full((rows.size, keep), -np.inf, np.float32)
        top_c = np.full((rows.size, keep), -1, np.int64)
        tau = np.full(rows.size, -np.inf, np.float32)
        c0, size, width = 0, _FIRST_CHUNK, int(lim.max())
        while c0 < width:
            c1 = min(c0 + size, width)
            scores = buf[:rows.size, :c1 - c0]
            np.matmul(qb, matrix[c0:c1].T, out=scores)
            for i in np.flatnonzero(lim < c1):
                scores[i, max(int(lim[i]) - c0, 0):] = -np.inf
            top_s, top_c, tau = _merge(top_s, top_c, scores, tau, c0)
            c0, size = c1, min(size * 2, _MAX_CHUNK)
        ranked = -np.sort(-top_s, axis=1)
        settled = ~np.isfinite(ranked[:, -1]) | (ranked[:, -1] < ranked[:, k - 1] - _EPS)
        found[rows] = np.where(np.isfinite(top_s), top_c, -1)
        unsettled.append(rows[~settled])
    out_s, out_i = _finish(queries, matrix, found, k)
    redo = np.concatenate(unsettled)
    if redo.size:
        out_s[redo], out_i[redo] = _direct(queries[redo], matrix, limits[redo], k)
    return out_s, out_i


def _single(q: np.ndarray, matrix: np.ndarray, width: int, k: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """One query over a small prefix: a float32 matrix-vector product, the k-th best score by
    one partition, the candidates within the margin re-scored by :func:`_cosines` (the same
    float64 scores and order as the block path, with a handful of calls instead of dozens)."""
    scores = matrix[:width] @ q[0].astype(np.float32)
    if width > k:
        floor = np.partition(scores, width - k)[width - k] - np.float32(_EPS)
        cand = np.flatnonzero(scores >= floor)
    else:
        cand = np.arange(width)
    # _finish's scores and order without its padding for blocks: every candidate is a real row
    sims = _cosines(q, matrix[cand][None])[0]
    order = np.lexsort((cand, -sims))[:k]
    out_s, out_i = np.full((1, k), -np.inf), np.full((1, k), -1, np.int64)
    out_s[0, :order.size], out_i[0, :order.size] = sims[order], cand[order]
    return out_s, out_i


def exact_topk(queries: np.ndarray, matrix: np.ndarray, k: int, *,
               limits: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``matrix`` with the largest dot product with each query.

    ``queries`` (m, d), L2-normalized (float64 keeps them exact); ``matrix`` (n, d) float32
    with L2-normalized rows (dot = cosine). ``limits`` (m,): query i may only see rows
    ``[0, limits[i])`` (the point-in-time prefix); default all. Returns ``(cosine similarity
    float64 (m, k), row int64 (m, k))`` best first, ties by lower row; padded with ``-inf`` /
    ``-1`` when fewer rows are visible. Exact: float32 candidates within a rounding margin of
    the k-th are re-scored as float64 cosines, so the result equals a float64 brute force."""
    q = np.ascontiguousarray(queries, dtype=np.float64).reshape(-1, matrix.shape[1])
    m, n, k = q.shape[0], matrix.shape[0], max(int(k), 0)
    lim = np.full(m, n, np.int64) if limits is None else np.clip(
        np.asarray(limits, dtype=np.int64).reshape(-1), 0, n)
    if m == 0 or k == 0 or n == 0 or int(lim.max()) == 0:
        return np.full((m, k), -np.inf), np.full((m, k), -1, np.int64)
    if m == 1 and lim[0] <= _SINGLE_ROWS:
        return _single(q, matrix, int(lim[0]), k)
    with one_blas_thread():
        width = int(lim.max())
        if width > 2 * _MAX_CHUNK and m * width > _DIRECT_CELLS:
            return _chunked(q, matrix, lim, k)
        # narrow prefixes: all scores of a block of queries at once; when the prefixes differ
        # (a walk-forward), small blocks in prefix order, so each scores little beyond its own
        out_s, out_i = np.full((m, k), -np.inf), np.full((m, k), -1, np.int64)
        order = np.argsort(lim, kind="stable")
        step = max(1, _DIRECT_CELLS // width)
        if lim[order[0]] < width:
            step = min(step, _PREFIX_BLOCK)
        for b0 in range(0, m, step):
            rows = order[b0:b0 + step]
            if lim[rows].max() > 0:
                out_s[rows], out_i[rows] = _direct(q[rows], matrix, lim[rows], k)
        return out_s, out_i
