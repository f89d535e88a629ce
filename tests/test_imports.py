"""Imports: the compute layer stays light, and the import graph (tools/import_graph.py) has no
cycle and no wrong-way import; the tool itself on a small tree."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "import_graph.py"


def _graph(root: Path = ROOT) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([sys.executable, str(TOOL), "--json", "--root", str(root)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_frame_imports_no_database_monitoring_ui_or_yahoo() -> None:
    code = ("import swing_core.frame, sys; print(sorted(m for m in sys.modules if m.split('.')[0]"
            " in ('sqlalchemy','psutil','streamlit','yfinance')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_the_import_graph_has_no_cycle_and_no_wrong_way_import() -> None:
    code, data = _graph()
    assert (data["cycles"], data["violations"]) == ([], [])  # python tools/import_graph.py
    assert code == 0


def test_no_module_over_400_lines() -> None:
    _, data = _graph()
    assert data["max_lines"] == 400
    assert data["over_max_lines"] == [], {n: data["sizes"][n] for n in data["over_max_lines"]}


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_the_tool_finds_cycles_wrong_way_imports_and_private_names(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "swing_core/__init__.py": "",
        "swing_core/config.py": "_SECRET = 1\n",
        "swing_core/perf/__init__.py": """
            _LAZY = {"timed": "swing_core.perf.timers"}
            def __getattr__(name):
                raise AttributeError(name)
            """,
        "swing_core/perf/timers.py": "def timed(): ...\n",
        "swing_core/market/__init__.py": "",
        "swing_core/market/_common.py": "X = 1\n_Y = 2\n",
        "swing_core/market/fetch.py": "from swing_core.market._common import _Y\n",
        # compute: the lazy package resolves to its timers; an in-function wrong-way import
        "swing_core/frame.py": """
            from swing_core.perf import timed
            def f():
                from swing_core import agent
            """,
        # services: a cycle (one side inside a function), Streamlit, other concepts' privates
        "swing_core/agent.py": """
            from typing import TYPE_CHECKING
            from swing_core import journal
            from swing_core.config import _SECRET
            from swing_core.market._common import X
            if TYPE_CHECKING:
                from swing_core import priors
            def g():
                import streamlit
            """,
        "swing_core/journal.py": "def h():\n    from swing_core.agent import g\n",
        "swing_core/priors.py": "from swing_core import agent\n",
        "swing_core/mystery.py": "",
        "pages/home.py": "from pages import _shared\nfrom swing_core import agent\n",
        "pages/_shared.py": "",
        "app.py": "from pages._shared import *\n",
    })
    code, data = _graph(root)
    assert code == 1
    assert data["cycles"] == [["swing_core.agent", "swing_core.journal"]]  # priors: type only
    deps = {(d["source"], d["target"]): d["only_in_function"] for d in data["dependencies"]}
    assert deps[("swing_core.frame", "swing_core.perf.timers")] is False
    assert ("swing_core.frame", "swing_core.perf") not in deps
    assert deps[("swing_core.journal", "swing_core.agent")] is True
    found = {(v["kind"], v["source"], v["target"]) for v in data["violations"]}
    assert found == {
        ("layer", "swing_core.frame", "swing_core.agent"),
        ("streamlit", "swing_core.agent", "streamlit"),
        ("private", "swing_core.agent", "swing_core.config"),
        ("private", "swing_core.agent", "swing_core.market._common"),
        ("unlayered", "swing_core.mystery", ""),
    }
    assert data["sizes"]["swing_core.agent"] == 9
