"""Numbers written as text in a bars file: the decimal mark ("." or ",") told from the numbers
themselves, and the text read as float64.

A comma is a decimal mark in much of Europe ("1.234,56"), a thousands separator in the US
("1,234.56"); reading one as the other gives prices 100 or 1000 times off, silently.  So the
mark comes from the numbers whose reading is certain, and a file that cannot tell, or that mixes
both styles, is refused with a message saying how to write it.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from swing_core.errors import MarketDataError

__all__ = ["decimal_mark", "numbers_from_text", "parse_numbers"]

# A number whose mark is certain: "1,234.56", "1,234,567" or "100.34" (dot for decimals);
# "1.234,56", "1.234.567" or "100,34" (comma for decimals). "1,234" and "1.234" could be either.
_DOT_DECIMAL = r"\d{1,3}(?:,\d{3})+\.\d+|\d{1,3}(?:,\d{3}){2,}|\d*\.\d+"
_COMMA_DECIMAL = r"\d{1,3}(?:\.\d{3})+,\d+|\d{1,3}(?:\.\d{3}){2,}|\d*,\d+"
_EITHER = r"[1-9]\d{0,2}[.,]\d{3}"
_NOT_DIGITS = "[$€£¥\\s\u00a0\u202f']"  # currency signs, spaces, a Swiss apostrophe


def decimal_mark(columns: list[pd.Series], *, sep: str | None, name: str = "the file") -> str:
    """"." or ",": the decimal mark of the numbers in ``columns`` (text), from the numbers whose
    mark is certain ("100,34", "1.234,56", "1,234.56", "100.34").  No such number: "." (as
    before), unless some could be read either way ("1,234") and the file is separated by
    something other than a comma (``sep`` ";" or tab: the European convention is likely) ->
    :class:`MarketDataError`, as it is for a file mixing both styles."""
    found: dict[str, str] = {}
    for column in columns:
        # each distinct text once, without signs and spaces, if it holds a mark at all
        text = pc.unique(pa.array(column.dropna().astype("string[pyarrow]")))
        text = pc.replace_substring_regex(text, _NOT_DIGITS, "")
        text = pc.utf8_ltrim(text.filter(pc.match_substring_regex(text, "[.,]")), "+-")
        either = pc.match_substring_regex(text, f"^(?:{_EITHER})$")
        certain = {mark: pc.and_(pc.match_substring_regex(text, f"^(?:{pattern})$"),
                                 pc.invert(either))
                   for mark, pattern in ((".", _DOT_DECIMAL), (",", _COMMA_DECIMAL))}
        for mark, mask in {**certain, "?": either}.items():
            hits = text.filter(mask)
            if mark not in found and len(hits):
                found[mark] = hits[0].as_py()
    if "." in found and "," in found:
        raise MarketDataError(
            f"{name} mixes two number styles: {found['.']!r} (a dot for decimals) and "
            f"{found[',']!r} (a comma for decimals). Write every number the same way, best with "
            "a dot for decimals and no thousands separators (1234.56).")
    if "." in found or "," in found:
        return "." if "." in found else ","
    if "?" in found and sep not in (",", None):
        example = found["?"]
        whole = example.replace(",", "").replace(".", "")
        raise MarketDataError(
            f"{name} is separated by {'tabs' if sep == chr(9) else repr(sep)} and a number "
            f"such as {example!r} could mean {example.replace(',', '.')} or {whole}: no number "
            "shows which mark is the decimal one. Use a dot for decimals and no thousands "
            "separators (1234.56), or give every price its decimals (1.234,50).")
    return "."


def parse_numbers(column: pd.Series, *, decimal: str = ".") -> pd.Series:
    """A price or volume column as float64; text may hold "$"/"€" signs, spaces and thousands
    separators, with ``decimal`` ("." or ",") as the decimal mark (see :func:`decimal_mark`);
    anything else unreadable becomes NaN."""
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype="float64", na_value=np.nan)
    else:
        text = pa.array(column.astype("string[pyarrow]"))
        values = _cast(text) if decimal == "." else None  # plain numbers: the fast path
        if values is None:
            thousands = "," if decimal == "." else "."
            text = pc.replace_substring_regex(text, f"{_NOT_DIGITS}|{re.escape(thousands)}", "")
            if decimal == ",":
                text = pc.replace_substring(text, ",", ".")
            values = _cast(text)
        if values is None:  # some text is no number: NaN there
            values = pd.to_numeric(text.to_pandas(), errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan)
    return pd.Series(values, index=column.index, name=column.name)


def _cast(text: pa.Array) -> np.ndarray | None:
    """Every text a number (or missing) -> float64 values (NaN where missing), else None."""
    try:
        return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def numbers_from_text(table: pd.DataFrame, columns: list, *, sep: str | None,
                      name: str = "the file") -> pd.DataFrame:
    """``table`` with its text ``columns`` (prices, volumes) as float64, read with the file's
    decimal mark (:func:`decimal_mark`); a comma is noted in ``table.attrs["notes"]``."""
    decimal = decimal_mark([table[c] for c in columns], sep=sep, name=name)
    for column in columns:
        table[column] = parse_numbers(table[column], decimal=decimal)
    if decimal == ",":
        table.attrs["notes"] = ["Numbers were read with a comma for decimals and a dot between "
                                "thousands (1.234,56 = 1234.56)."]
    return table
