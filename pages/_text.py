"""Text safety: user input (symbols, file names, error messages that quote them) is shown as
plain text, never as Markdown that could format, link or colour it."""

from __future__ import annotations

import re
from typing import Any

#: Markdown / Streamlit-directive characters that could format or link user text: escaping them
#: (and "[" in particular, which every link, image and colour directive needs) keeps it plain.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>~$|#])")


def plain(text: Any) -> str:
    """``text`` with Markdown specials escaped, for messages that may contain user input (they
    are rendered by st.error / st.caption, which interpret Markdown; raw HTML never is)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))
