"""What the pages share (``pages/_shared.py`` and the modules behind it): the error edge's rule
(a SwingError is a message, anything else a logged bug), the one page list, the façade."""

from __future__ import annotations

import ast
import logging

import pytest
from apptest_support import ROOT
from streamlit.runtime.scriptrunner_utils.exceptions import StopException

from pages import _edge, _nav, _shared
from swing_core.errors import ConfigError, MarketDataError


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the edge shows with ``st.error``."""
    messages: list[str] = []
    monkeypatch.setattr(_edge.st, "error", lambda text, **_: messages.append(text))
    return messages


@pytest.mark.parametrize("error", [ConfigError("Unknown interval '2h': choose one of 15m."),
                                   MarketDataError("No bars for ZZZZ 1d.")])
def test_a_swing_error_is_shown_as_its_message(shown, caplog, error):
    with caplog.at_level(logging.ERROR, logger="swingdesk.ui"), _edge.error_edge("The page"):
        raise error
    assert shown == [_shared.plain(error)]
    assert not caplog.records, "a user error is not logged as a bug"


@pytest.mark.parametrize("error", [ValueError("cannot reindex on an axis with duplicates"),
                                   KeyError("close"), ZeroDivisionError()])
def test_any_other_error_is_a_logged_bug_with_a_plain_message(shown, caplog, error):
    with caplog.at_level(logging.ERROR, logger="swingdesk.ui"), _edge.error_edge("The page"):
        raise error
    assert len(shown) == 1
    assert shown[0].startswith(f"The page hit an unexpected error ({type(error).__name__})")
    assert str(error) not in shown[0] or not str(error), "no internals in the UI"
    assert "Traceback" not in shown[0]
    [record] = caplog.records
    assert record.exc_info is not None, "the traceback goes to the server log"


def test_streamlit_control_flow_passes_through(shown):
    with pytest.raises(StopException), _edge.error_edge():
        raise StopException()
    assert shown == []


def test_one_page_list_names_every_page_file_once():
    files = {p.file for p in _nav.PAGES}
    assert len(files) == len(_nav.PAGES) == len({p.key for p in _nav.PAGES})
    on_disk = {f"pages/{p.name}" for p in (ROOT / "pages").glob("[!_]*.py")}
    assert on_disk == files
    assert [p.key for p in _nav.installed_pages()] == [p.key for p in _nav.PAGES]
    assert _nav.PAGE_FILES == {p.key: p.file for p in _nav.PAGES}
    assert all(p.blurb for p in _nav.PAGES if p.key != _nav.HOME), "Home lists them"


def test_no_other_module_lists_the_page_files():
    """app.py and Home read the list from pages/_nav.py instead of repeating it."""
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        if path.name == "_nav.py":
            continue
        literals = {node.value for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        repeated = sorted(literals & set(_nav.PAGE_FILES.values()))
        assert not repeated, f"{path.name} repeats page files {repeated}: use pages._nav"


def test_the_facade_exports_exactly_its_public_names():
    assert sorted(_shared.__all__) == _shared.__all__
    for name in _shared.__all__:
        assert getattr(_shared, name) is not None
    used = set()
    for path in sorted((ROOT / "pages").glob("[!_]*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "ui":
                used.add(node.attr)
    assert used <= set(_shared.__all__), used - set(_shared.__all__)
