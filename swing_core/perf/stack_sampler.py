"""A stack sampler for the profile's call tree: a thread that reads one thread's call stack
every ``interval_s`` (``sys._current_frames``) and adds the wall time since its previous look to
that stack.

Why, next to cProfile: cProfile records caller → callee edges per *function*, not call paths, so
a function that many others go through (the ``timed_fn`` wrapper around most engine entry
points) merges everything under it, and a tree rebuilt from its edges puts ``fetch_bars`` beside
``analysis`` instead of inside it. Sampled stacks are real paths. Both run at once: cProfile uses
the interpreter's profile hook, the sampler only reads frames from another thread.

Accuracy: a sample can only be taken when the sampled thread lets go of the GIL; the switch
interval is lowered to ``interval_s`` while sampling (and restored after) so that happens about
as often as asked. Time spent in a C call that holds the GIL lands on the Python frame that made
the call, where a reader looks for it anyway.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from types import CodeType, FrameType
from typing import Any

__all__ = ["StackKey", "StackSampler", "frame_key"]

#: One frame of a sampled stack: (file name, first line, qualified name).
StackKey = tuple[str, int, str]


def frame_key(code: CodeType) -> StackKey:
    return (code.co_filename, code.co_firstlineno, getattr(code, "co_qualname", code.co_name))


class StackSampler:
    """Samples the stack of thread ``thread_id`` (default: the calling thread) below the frame
    running ``root`` every ``interval_s`` seconds while active (a context manager).
    ``samples`` maps a stack (root first) to nanoseconds of wall time; ``count``: samples
    taken."""

    def __init__(self, root: CodeType, *, interval_s: float = 0.001,
                 thread_id: int | None = None) -> None:
        self.root = root
        self.interval_s = interval_s
        self.thread_id = thread_id if thread_id is not None else threading.get_ident()
        self.samples: Counter[tuple[StackKey, ...]] = Counter()
        self.count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._switch = sys.getswitchinterval()

    def __enter__(self) -> StackSampler:
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, self.interval_s))
        self._thread = threading.Thread(target=self._run, name="swing-stack-sampler",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        sys.setswitchinterval(self._switch)

    def _run(self) -> None:
        last = time.perf_counter_ns()
        while not self._stop.wait(self.interval_s):
            frame = sys._current_frames().get(self.thread_id)
            now = time.perf_counter_ns()
            stack = self._stack(frame) if frame is not None else None
            if stack:
                self.samples[stack] += now - last
                self.count += 1
            last = now

    def _stack(self, frame: FrameType | None) -> tuple[StackKey, ...] | None:
        """The stack from the root's frame down to ``frame``; None outside the root."""
        codes: list[CodeType] = []
        while frame is not None:
            codes.append(frame.f_code)
            if frame.f_code is self.root:
                return tuple(frame_key(code) for code in reversed(codes))
            frame = frame.f_back
        return None
