"""Helpers for the shared firmware cases: the same module runs under CPython (pytest) and MicroPython.

Nothing here may use pytest, typing, pathlib or anything else MicroPython lacks.
"""

import os

CENTER = "445202101001"
DEVICE = "dev-02aabbccdd03"
OTHER_DEVICE = "dev-02aabbccdd04"
KEY = bytes(range(32))  # the example key of docs/protocol.md

_counter = [0]
_root = [None]


def raises(exc_type, fn, *args, **kwargs):
    """Call fn; return the exception it raised, which must be an exc_type. Fails if it returns."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


def _scratch_root():
    if _root[0] is None:
        try:
            import atexit
            import shutil
            import tempfile

            _root[0] = tempfile.mkdtemp(prefix="fwcases-")
            atexit.register(shutil.rmtree, _root[0], True)
        except ImportError:  # MicroPython: an in-memory (WebAssembly) or throw-away filesystem
            _root[0] = "/scratch"
            try:
                os.mkdir(_root[0])
            except OSError:
                pass
    return _root[0]


def scratch_dir(name):
    """A new, empty folder (a fresh 'flash') for one case."""
    _counter[0] += 1
    path = "%s/%s-%d" % (_scratch_root(), name, _counter[0])
    os.mkdir(path)
    return path


def write(path, data):
    with open(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def listdir(path):
    return sorted(os.listdir(path))


class FakeDriver:
    """A driver with feed()/reconnect()/is_up() that records calls."""

    def __init__(self, up=True):
        self.up = up
        self.feeds = 0
        self.reconnects = 0

    def feed(self):
        self.feeds += 1

    def is_up(self):
        return self.up

    def reconnect(self):
        self.reconnects += 1


class FakePanel:
    def __init__(self):
        self.lines = []
        self.brightness = None

    def show_lines(self, lines):
        self.lines = list(lines)

    def set_brightness(self, level):
        self.brightness = level
