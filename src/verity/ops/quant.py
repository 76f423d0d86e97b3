"""JPEG quantization-table analysis: IJG (libjpeg) quality estimation and standard-table matching.

A baseline JPEG stores one 8x8 quantization table per component group (usually luma and chroma).
libjpeg and everything built on it (Pillow, GIMP, ImageMagick, most web services and a good share
of cameras) scale the two example tables of ITU-T T.81 Annex K by a *quality* factor in 1..100.
Many cameras and some editors (Photoshop) use their own tables instead. This module answers two
questions about a file's tables: which IJG quality is closest, and is the match exact (the file was
written by a libjpeg-style encoder) or not (a custom, typically in-camera, encoder).

Tables are handled in **natural (row-major) order**, which is what Pillow >= 8.3 returns in
``Image.quantization`` and therefore in :attr:`verity.core.types.Sample.quantization`. Use
:func:`zigzag_to_natural` for tables read straight from a DQT segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: ITU-T T.81 Annex K.1 luminance table (quality 50), natural order.
IJG_LUMA = np.array(
    [
        16, 11, 10, 16, 24, 40, 51, 61,
        12, 12, 14, 19, 26, 58, 60, 55,
        14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77,
        24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101,
        72, 92, 95, 98, 112, 100, 103, 99,
    ],
    dtype=np.int64,
)  # fmt: skip

#: ITU-T T.81 Annex K.2 chrominance table (quality 50), natural order.
IJG_CHROMA = np.array(
    [
        17, 18, 24, 47, 99, 99, 99, 99,
        18, 21, 26, 66, 99, 99, 99, 99,
        24, 26, 56, 99, 99, 99, 99, 99,
        47, 66, 99, 99, 99, 99, 99, 99,
    ]
    + [99] * 32,
    dtype=np.int64,
)  # fmt: skip

#: Zig-zag scan position -> natural (row-major) index.
ZIGZAG = np.array(
    [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
        12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ],
    dtype=np.int64,
)  # fmt: skip


def zigzag_to_natural(table: np.ndarray) -> np.ndarray:
    """Reorder a 64-entry table from zig-zag scan order to natural order.

    Parameters
    ----------
    table : array_like, shape (64,)
        Values in the order they appear in a DQT segment.

    Returns
    -------
    ndarray, shape (64,), int64
    """
    t = np.asarray(table, dtype=np.int64).reshape(64)
    out = np.empty(64, np.int64)
    out[ZIGZAG] = t
    return out


def ijg_scale(quality: int) -> int:
    """libjpeg's percentage scale factor for a quality in 1..100 (``jpeg_quality_scaling``)."""
    q = int(min(100, max(1, quality)))
    return 5000 // q if q < 50 else 200 - 2 * q


def ijg_table(quality: int, chroma: bool = False, baseline: bool = True) -> np.ndarray:
    """The table libjpeg writes at ``quality``.

    Parameters
    ----------
    quality : int
        1..100 (clipped).
    chroma : bool
        Scale the chrominance example table instead of the luminance one.
    baseline : bool
        Clip entries to 1..255 (``force_baseline``, libjpeg's default); else 1..32767.

    Returns
    -------
    ndarray, shape (64,), int64, natural order
    """
    base = IJG_CHROMA if chroma else IJG_LUMA
    t = (base * ijg_scale(quality) + 50) // 100
    return np.clip(t, 1, 255 if baseline else 32767)


#: All IJG tables for qualities 1..100, shape (100, 2, 64): [quality - 1, luma/chroma, coefficient].
_IJG_ALL = np.stack([np.stack([ijg_table(q), ijg_table(q, chroma=True)]) for q in range(1, 101)])


@dataclass
class QuantAnalysis:
    """Result of :func:`analyze_tables`.

    Attributes
    ----------
    quality : int
        The IJG quality (1..100) whose tables are closest to the file's.
    standard : bool
        True when every table equals the IJG table at ``quality`` exactly (luma table for table 0,
        chroma table for the others).
    max_abs_error : int
        Largest absolute difference between a file entry and the IJG entry at ``quality``.
    mean_abs_error : float
        Mean absolute difference over all entries of all tables.
    n_tables : int
        Number of tables compared.
    all_ones : bool
        True when every entry is 1 (quality 100, near lossless).
    """

    quality: int
    standard: bool
    max_abs_error: int
    mean_abs_error: float
    n_tables: int
    all_ones: bool


def _as_tables(tables: dict[int, list[int]] | list | np.ndarray) -> np.ndarray:
    if isinstance(tables, dict):
        items = [tables[k] for k in sorted(tables)]
    else:
        items = list(tables)
    arr = []
    for t in items:
        a = np.asarray(t, dtype=np.int64).reshape(-1)
        if a.size != 64:
            raise ValueError(f"a quantization table has {a.size} entries, expected 64")
        arr.append(a)
    if not arr:
        raise ValueError("no quantization tables")
    return np.stack(arr)


def analyze_tables(tables: dict[int, list[int]] | list | np.ndarray) -> QuantAnalysis:
    """Find the IJG quality closest to a file's tables and whether they match exactly.

    Parameters
    ----------
    tables : dict of int to sequence of int, or array_like, shape (n, 64)
        Tables in natural order, table 0 being luma (as in ``Sample.quantization``).

    Returns
    -------
    QuantAnalysis

    Raises
    ------
    ValueError
        When a table does not have 64 entries or there are none.

    Notes
    -----
    Table 0 is compared with the scaled luma table and every further table with the scaled
    chroma table (JPEGs with a third table for Cr use the chroma table twice). The best quality
    minimises the summed absolute error of all tables; ties go to the higher quality.
    """
    t = _as_tables(tables)  # (n, 64)
    ref = np.concatenate([_IJG_ALL[:, :1], np.repeat(_IJG_ALL[:, 1:2], max(0, len(t) - 1), axis=1)], axis=1)
    err = np.abs(ref - t[None])  # (100, n, 64)
    total = err.reshape(100, -1).sum(axis=1)
    # prefer the highest quality among ties (flat tables at q >= 98 are all ones)
    qi = int(len(total) - 1 - np.argmin(total[::-1]))
    e = err[qi]
    return QuantAnalysis(
        quality=qi + 1,
        standard=bool(e.max() == 0),
        max_abs_error=int(e.max()),
        mean_abs_error=float(e.mean()),
        n_tables=int(len(t)),
        all_ones=bool(np.all(t == 1)),
    )


def estimate_quality(tables: dict[int, list[int]] | list | np.ndarray) -> int:
    """The IJG quality (1..100) closest to ``tables``; see :func:`analyze_tables`."""
    return analyze_tables(tables).quality
