"""An int8-quantized pattern backend: 18 bytes a vector instead of 64 (3.6x less memory).

Quantization: per dimension ``d``, ``x ≈ center[d] + code * scale[d]`` with ``code`` an int8
and ``scale = (max - min) / 255`` over the rows, so the round-trip error is at most
``scale / 2`` per value (about 0.002 for the v1 setup vectors). The float32 rows are **not**
kept (that would undo the saving): everything the index says about a row comes from its
dequantized values.

Lengths: besides its 16 codes a row keeps ``1 / |dequantized row| - 1`` as an int16 multiple of
one step per index (2 bytes, to about 1e-7; int16, not float16, because numpy converts float16
in software, 20x slower). Rounding moves a unit vector's length by 5e-4 on average (1.5e-3 at
the 99th percentile), while the 50 best cosines of a query among 100,000 / 1,000,000 setup
vectors lie within about 1.3e-3 / 3e-4 of each other: ranking by the dot product alone ranks
largely by length (recall@50 0.77 / 0.44 in ``bench_scale.py``, against 0.98 / 0.95 by cosine).

Search: an asymmetric product, float32 query x dequantized int8 rows (dequantized a block of
rows at a time, never the whole matrix), times each row's ``1 / length``: the cosine of the
dequantized row. The ``2k + 16`` best per query are re-scored as float64 cosines of their
dequantized rows and the best ``k`` returned (ties by row). The result is approximate with
respect to the original vectors only through the rounding of the rows: its recall@k
against the exact float32 search is measured by :func:`~swing_core.patterns.backends.
recall_at_k` (with the original matrix as the reference) and in ``benchmarks/bench_scale.py``.
Point-in-time prefixes (``limits``) are exact: a query never scores a row past its limit.
Filtered searches (the store's symbol / setup scopes) give the exact kernel, which ranks by dot
product, the scope's rows from :meth:`Int8VectorIndex.take_unit`: dequantized, at unit length.

Re-builds (the index store deletes and re-sorts by handing back dequantized rows) keep the
current grid when the rows fit it, so re-quantizing already quantized rows changes nothing; a
new grid is fitted only when rows fall outside it or the range shrinks below 90 % of it.
"""

from __future__ import annotations

import numpy as np

from swing_core.patterns.backends import VECTOR_DIM
from swing_core.patterns.kernel import _DIRECT_CELLS, _finish, one_blas_thread

__all__ = ["Int8VectorIndex"]

_ROW_BLOCK = 65_536  # rows dequantized at a time (a 4 MB float32 block)
_INT16_MAX = 32_767


class _Dequantized:
    """Indexable like a float32 matrix: ``rows[idx]`` dequantizes only the rows asked for."""

    def __init__(self, codes: np.ndarray, center: np.ndarray, scale: np.ndarray) -> None:
        self.codes, self.center, self.scale = codes, center, scale

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        return self.center + self.codes[idx].astype(np.float32) * self.scale


class Int8VectorIndex:
    """Rows as int8 codes with a per-dimension scale and offset; approximate search."""

    name = "int8"
    exact = False

    def __init__(self, dim: int = VECTOR_DIM, *, candidates: int | None = None) -> None:
        self._codes = np.empty((0, dim), np.int8)
        self._lengths = np.empty(0, np.int16)  # 1 / |dequantized row| - 1, in _length_step
        self._length_step = 1.0
        self._n = 0
        self.center = np.zeros(dim, np.float32)  # the value of code 0
        self.scale = np.ones(dim, np.float32)
        self._lo = np.full(dim, np.inf, np.float32)  # the grid: code -128 .. 127
        self._hi = np.full(dim, -np.inf, np.float32)
        self.candidates = candidates

    # ----------------------------------------------------------------- quantization

    def _fits(self, rows: np.ndarray, *, shrink: bool) -> bool:
        if rows.shape[0] == 0:
            return True
        lo, hi = rows.min(axis=0), rows.max(axis=0)
        half = self.scale / 2
        inside = bool((lo >= self._lo - half).all() and (hi <= self._hi + half).all())
        return inside and (not shrink or bool((hi - lo >= 0.9 * (self._hi - self._lo)).all()))

    def _fit(self, rows: np.ndarray) -> None:
        lo, hi = rows.min(axis=0), rows.max(axis=0)
        self.scale = np.maximum((hi - lo) / 255, 1e-7).astype(np.float32)
        self.center = (lo + 128 * self.scale).astype(np.float32)
        self._lo, self._hi = lo.astype(np.float32), hi.astype(np.float32)

    def quantize(self, rows: np.ndarray) -> np.ndarray:
        """int8 codes of float rows on the current grid (values outside it are clipped)."""
        codes = np.rint((np.asarray(rows, np.float32) - self.center) / self.scale)
        return np.clip(codes, -128, 127).astype(np.int8)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        return self.center + np.asarray(codes).astype(np.float32) * self.scale

    def _deviations(self, codes: np.ndarray) -> np.ndarray:
        """``1 / |row| - 1`` (float64) of the dequantized rows of ``codes``; 0 for a (near-)zero
        row, whose dot products are ~0 anyway."""
        out = np.empty(codes.shape[0])
        for r0 in range(0, codes.shape[0], _ROW_BLOCK):
            rows = self.dequantize(codes[r0:r0 + _ROW_BLOCK]).astype(np.float64)
            length = np.sqrt(np.einsum("nd,nd->n", rows, rows))
            inverse = np.divide(1.0, length, out=np.ones_like(length), where=length > 1e-4)
            out[r0:r0 + _ROW_BLOCK] = inverse - 1.0
        return out

    def _encode_lengths(self, first: int) -> None:
        """Length codes of rows ``[first, n)``; all rows when ``first`` is 0 or the new ones
        overflow the step. The step covers the worst a unit row can round to on this grid
        (``|scale| / 2``), so appending unit rows never re-encodes the others."""
        dev = self._deviations(self._codes[first:self._n])
        top = float(np.abs(dev).max()) if dev.size else 0.0
        if first and top > _INT16_MAX * self._length_step:
            first, dev = 0, self._deviations(self._codes[:self._n])
            top = float(np.abs(dev).max())
        if first == 0:
            worst = float(np.linalg.norm(self.scale.astype(np.float64))) / 2
            self._length_step = max(top, worst / max(1.0 - worst, 1e-3), 1e-9) / _INT16_MAX
        self._lengths[first:self._n] = np.rint(dev / self._length_step).astype(np.int16)

    def _set_rows(self, rows: np.ndarray) -> None:
        self._codes = self.quantize(rows)
        self._lengths = np.empty(rows.shape[0], np.int16)
        self._n = rows.shape[0]
        self._encode_lengths(0)

    # ----------------------------------------------------------------- VectorIndex

    def build(self, matrix: np.ndarray) -> None:
        rows = np.asarray(matrix, dtype=np.float32).reshape(-1, self._codes.shape[1])
        if rows.shape[0] and not self._fits(rows, shrink=True):
            self._fit(rows)
        self._set_rows(rows)

    def add(self, matrix: np.ndarray) -> None:
        rows = np.asarray(matrix, dtype=np.float32).reshape(-1, self._codes.shape[1])
        if not self._fits(rows, shrink=False):  # a wider grid: re-quantize everything
            old = self.matrix
            both = np.concatenate([old, rows])
            self._fit(both)
            self._set_rows(both)
            return
        need = self._n + rows.shape[0]
        if need > self._codes.shape[0]:  # grow by 1/8, as NumpyVectorIndex
            size = max(need, self._n + self._n // 8 + 1024)
            grown = np.empty((size, self._codes.shape[1]), np.int8)
            grown[:self._n] = self._codes[:self._n]
            lengths = np.empty(size, np.int16)
            lengths[:self._n] = self._lengths[:self._n]
            self._codes, self._lengths = grown, lengths
        self._codes[self._n:need] = self.quantize(rows)
        first, self._n = self._n, need
        self._encode_lengths(first)

    def __len__(self) -> int:
        return self._n

    @property
    def codes(self) -> np.ndarray:
        view = self._codes[:self._n]
        view.flags.writeable = False
        return view

    @property
    def matrix(self) -> np.ndarray:
        """The dequantized rows (n, d) float32: a new array of 4 bytes a value (use
        :meth:`take` for a few rows)."""
        return self.dequantize(self.codes)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Dequantized float32 rows ``rows``."""
        return self.dequantize(self._codes[:self._n][rows])

    def take_unit(self, rows: np.ndarray) -> np.ndarray:
        """Dequantized float32 rows ``rows`` divided by their length: what the exact kernel
        (which ranks by dot product) needs to rank them by cosine."""
        out = self.take(rows)
        length = np.sqrt(np.einsum("nd,nd->n", out.astype(np.float64), out))
        out /= np.where(length > 0, length, 1.0)[:, None].astype(np.float32)
        return out

    @property
    def nbytes(self) -> int:
        return int(self._codes.nbytes + self._lengths.nbytes + self.center.nbytes
                   + self.scale.nbytes + self._lo.nbytes + self._hi.nbytes)

    def search(self, queries: np.ndarray, k: int, *, limits: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows most similar to each query among its prefix ``[0, limits[i])``, by
        cosine with the dequantized rows (module docstring); padded with -inf / -1."""
        d = self._codes.shape[1]
        q = np.ascontiguousarray(queries, dtype=np.float64).reshape(-1, d)
        m, n, k = q.shape[0], self._n, max(int(k), 0)
        lim = np.full(m, n, np.int64) if limits is None else np.clip(
            np.asarray(limits, dtype=np.int64).reshape(-1), 0, n)
        if m == 0 or k == 0 or n == 0 or int(lim.max()) == 0:
            return np.full((m, k), -np.inf), np.full((m, k), -1, np.int64)
        keep = self.candidates or 2 * k + 16
        cand = np.full((m, keep), -1, np.int64)
        # q . (center + code * scale) = q . center + (q * scale) . code
        scaled = (q * self.scale).astype(np.float32)
        bias = (q @ self.center.astype(np.float64)).astype(np.float32)
        order = np.argsort(lim, kind="stable")
        width = int(lim.max())
        step = max(1, _DIRECT_CELLS // width)
        with one_blas_thread():
            for b0 in range(0, m, step):
                rows = order[b0:b0 + step]
                cand[rows] = self._block_candidates(scaled[rows], bias[rows], lim[rows], keep)
        return _finish(q, _Dequantized(self._codes, self.center, self.scale), cand, k)

    def _block_candidates(self, scaled: np.ndarray, bias: np.ndarray, lim: np.ndarray,
                          keep: int) -> np.ndarray:
        """The ``keep`` best rows of a block of queries by float32 cosine with the dequantized
        rows: (bias + scaled . code) / |row|. Not the dot product alone: the rows' lengths are
        off 1 by more than the top cosines differ (module docstring)."""
        width = int(lim.max())
        scores = np.empty((scaled.shape[0], width), np.float32)
        for r0 in range(0, width, _ROW_BLOCK):
            r1 = min(r0 + _ROW_BLOCK, width)
            block = scores[:, r0:r1]
            np.matmul(scaled, self._codes[r0:r1].astype(np.float32).T, out=block)
            block += bias[:, None]
            block *= self._lengths[r0:r1] * np.float32(self._length_step) + np.float32(1)
        if (lim < width).any():
            scores[np.arange(width)[None, :] >= lim[:, None]] = -np.inf
        if width > keep:
            best = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        else:
            best = np.broadcast_to(np.arange(width), (scores.shape[0], width))
        found = np.full((scaled.shape[0], keep), -1, np.int64)
        found[:, :best.shape[1]] = np.where(
            np.isfinite(np.take_along_axis(scores, best, axis=1)), best, -1)
        return found
