"""The Docker recipe (Dockerfile, .dockerignore, compose.yaml), exercised without a Docker
engine: the files are parsed and checked, and the Dockerfile's ``RUN pip install`` and its
``CMD`` run in a fresh virtualenv with the image's ``ENV``, until the app's health endpoint
answers and the image's own HEALTHCHECK command passes; compose's migration command runs too.

The virtualenv is made with ``--system-site-packages`` so that ``pip install -r
requirements.txt`` is satisfied by the packages already installed here (CI installs them from
requirements-dev.txt): the test adds ``--no-index``, so it never downloads, and a requirement
that is not installed fails here instead. The interpreter is this machine's Python, not the
image's 3.12.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HEALTH_PATH = "/_stcore/health"


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuations joined."""
    steps: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, args = (pending + line).partition(" ")
        steps.append((instruction.upper(), " ".join(args.split())))
        pending = ""
    return steps


def _all(instruction: str) -> list[str]:
    return [args for name, args in dockerfile() if name == instruction]


def _one(instruction: str) -> str:
    found = _all(instruction)
    assert len(found) == 1, (instruction, found)
    return found[0]


def _command(args: str) -> list[str]:
    """An exec-form (JSON array) or shell-form command as an argument list."""
    return json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _all("ENV"):
        for pair in shlex.split(args):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """HEALTHCHECK's options and its command."""
    options_text, _, command = _one("HEALTHCHECK").partition(" CMD ")
    options = dict(opt.removeprefix("--").split("=", 1) for opt in options_text.split())
    return options, _command(command.strip())


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------- Dockerfile


def test_the_image_is_slim_python_312_run_by_an_unprivileged_user() -> None:
    assert _one("FROM") == "python:3.12-slim"
    user = _one("USER")
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))
    assert any(re.search(rf"\buseradd\b[^&;]* {re.escape(user)}(\s|$)", run)
               for run in _all("RUN")), "a RUN step creates the USER"
    steps = [name for name, _ in dockerfile()]
    assert steps.index("USER") > max(i for i, name in enumerate(steps) if name == "RUN"), \
        "every RUN as root happens before the switch, the app runs unprivileged"


def test_the_image_has_the_guides_runtime_settings() -> None:
    env = image_env()
    assert {k: env.get(k) for k in ("PYTHONOPTIMIZE", "PYTHONDONTWRITEBYTECODE",
                                     "MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_",
                                     "MALLOC_MMAP_THRESHOLD_")} == {
        "PYTHONOPTIMIZE": "1", "PYTHONDONTWRITEBYTECODE": "1", "MALLOC_ARENA_MAX": "2",
        "MALLOC_TRIM_THRESHOLD_": "131072", "MALLOC_MMAP_THRESHOLD_": "131072"}
    assert env["SWING_DATA_DIR"].startswith("/")


def test_cmd_serves_the_app_on_all_container_interfaces_and_the_healthcheck_asks_it() -> None:
    command = _command(_one("CMD"))
    assert command[:3] == ["streamlit", "run", "app.py"]
    assert "--server.address=0.0.0.0" in command
    port = next(a.split("=", 1)[1] for a in command if a.startswith("--server.port="))
    assert _one("EXPOSE") == port
    options, check = healthcheck()
    assert f"http://localhost:{port}{HEALTH_PATH}" in " ".join(check)
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)


def test_dockerignore_keeps_data_and_secrets_out_and_the_app_in() -> None:
    patterns = [line.strip().rstrip("/") for line in
                (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        return any(fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
                   or fnmatch.fnmatch(prefix.split("/")[-1], pattern.removeprefix("**/"))
                   for prefix in prefixes for pattern in patterns)

    for path in ("data/swingdesk.sqlite", ".git/HEAD", ".streamlit/secrets.toml", ".env",
                 "tests/conftest.py", "swing_core/__pycache__/x.pyc"):
        assert ignored(path), path
    for path in ("app.py", "requirements.txt", "pages/data.py", "swing_core/cli.py",
                 "swing_core/migrations/env.py", ".streamlit/config.toml",
                 "benchmarks/run_all.py"):  # the Performance page's self-benchmark runs these
        assert ignored(path) is False, path
        assert (ROOT / path).exists(), path


# --------------------------------------------------------------------------- running it


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv over the installed packages, after the Dockerfile's pip step."""
    venv = tmp_path_factory.mktemp("image") / "venv"
    # --without-pip: this pip installs into it (`pip --python`), which skips ensurepip's copy
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    pip_steps = [_command(run) for run in _all("RUN") if " pip install " in f" {run} "]
    assert pip_steps, "the Dockerfile installs the requirements with pip"
    for step in pip_steps:
        words = step[2].split() if step[0] == "/bin/sh" else step
        assert words[0] == "pip" and "requirements.txt" in words, words
        done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), *words[1:],
                               "--no-index"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return python


def _run_env(data_dir: Path) -> dict[str, str]:
    """This environment (offline, hermetic) plus the image's ENV; the data folder is a temporary
    one instead of the image's /app/data."""
    return {**os.environ, **image_env(), "SWING_DATA_DIR": str(data_dir)}


def test_the_image_cmd_serves_a_healthy_app(venv_python: Path, tmp_path: Path) -> None:
    port = _free_port()
    command = _command(_one("CMD"))
    # `streamlit` is the package's console script: with the packages coming from the system
    # site, the venv has no copy of it, so run the same entry point as `python -m streamlit`.
    # The test listens on loopback only, on a free port.
    args = [{"--server.address=0.0.0.0": "--server.address=127.0.0.1",
             "--server.port=8501": f"--server.port={port}"}.get(a, a) for a in command[1:]]
    log = tmp_path / "streamlit.log"
    with log.open("wb") as out:
        server = subprocess.Popen([str(venv_python), "-m", "streamlit", *args], cwd=ROOT,
                                  env=_run_env(tmp_path), stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}{HEALTH_PATH}"
            deadline, answer = time.monotonic() + 90, b""
            while time.monotonic() < deadline and server.poll() is None and answer != b"ok":
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        answer = response.read()
                except OSError:
                    time.sleep(0.3)
            assert answer == b"ok", log.read_text()[-3000:]
            _, check = healthcheck()  # the image's own HEALTHCHECK command, on this port
            check = [part.replace("localhost:8501", f"127.0.0.1:{port}") for part in check]
            assert check[0] == "python"
            done = subprocess.run([str(venv_python), *check[1:]], env=_run_env(tmp_path),
                                  capture_output=True, text=True, timeout=30, check=False)
            assert done.returncode == 0, done.stderr
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=15)


def test_the_compose_migration_command_runs_in_the_image_environment(venv_python: Path,
                                                                      tmp_path: Path) -> None:
    command = compose()["services"]["migrate"]["command"]
    assert command[0] == "python"
    done = subprocess.run([str(venv_python), *command[1:]], cwd=ROOT, env=_run_env(tmp_path),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "swingdesk.sqlite").is_file()


# --------------------------------------------------------------------------- compose.yaml


def test_compose_runs_postgres_then_the_migration_then_the_limited_app() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "migrate", "app"}
    db, migrate, app = services["db"], services["migrate"], services["app"]
    assert db["image"].startswith("postgres:") and "ports" not in db, "the database stays inside"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert migrate["command"] == ["python", "-m", "swing_core", "db", "upgrade"]
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert app["depends_on"] == {"db": {"condition": "service_healthy"},
                                 "migrate": {"condition": "service_completed_successfully"}}
    assert migrate["build"] == app["build"] == "." and migrate["image"] == app["image"]
    assert app["deploy"]["resources"]["limits"] == {"memory": "2G", "cpus": "2"}
    env = app["environment"]
    assert env["SWING_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@db:5432/" in env["SWING_DATABASE_URL"]
    assert migrate["environment"]["SWING_DATABASE_URL"] == env["SWING_DATABASE_URL"]
    assert env["SWING_DB_AUTO_MIGRATE"] == "0", "the app never changes the schema"
    assert app["ports"] == ["${SWING_BIND:-127.0.0.1}:${SWING_PORT:-8501}:8501"]
    assert HEALTH_PATH in " ".join(app["healthcheck"]["test"])
