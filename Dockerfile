# SwingDesk's image: the Streamlit app and the `python -m swing_core` CLI (README, Deploying for
# a team). compose.yaml runs it with PostgreSQL. tests/test_dockerfile.py parses this file and
# runs its pip install and its CMD in a fresh virtualenv, so keep each instruction on one logical
# line (backslash continuations are fine) and the pip step as `pip install ... -r requirements.txt`.
FROM python:3.12-slim

# The performance guide's runtime settings: no .pyc writes in a read-only image, asserts off,
# and glibc's allocator told to return freed memory (two arenas, trim/mmap above 128 KiB) so a
# long-running app's resident memory follows its real use.
ENV PYTHONOPTIMIZE=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MALLOC_ARENA_MAX=2 \
    MALLOC_TRIM_THRESHOLD_=131072 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    SWING_DATA_DIR=/app/data

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# An unprivileged user owns the data folder (the SQLite default, the watchlist, uploads) and
# nothing else: the code stays root-owned and read-only to the app.
RUN useradd --create-home --uid 10001 --user-group swingdesk \
    && mkdir -p /app/data \
    && chown swingdesk:swingdesk /app/data
COPY . .
USER swingdesk

EXPOSE 8501
# The slim image has no curl: Python asks the app's health endpoint, which answers "ok".
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4).read() != b'ok')"]

# Inside a container the app must listen on every interface to be reachable through the
# published port; compose.yaml publishes that port on the host's 127.0.0.1 by default.
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501"]
