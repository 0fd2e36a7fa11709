"""Small files on flash that survive a power cut at any moment.

A file is never rewritten in place: the new content goes to `<name>.tmp`,
then a rename puts it over the old one, so a reader sees the old or the new
version, never half of one. FAT (some boards) refuses to rename over an
existing file; there the old file is removed first, and a reader that finds
only the `.tmp` left by a cut between remove and rename takes it (a complete
JSON document parses; a torn one does not).

Works the same on MicroPython (os.rename, os.stat, no os.path) and CPython.
"""

import json
import os

TMP_SUFFIX = ".tmp"


def join(directory, name):
    if not directory:
        return name
    return directory.rstrip("/") + "/" + name


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def ensure_dir(directory):
    """Create `directory` (and its parents) if missing; '' means the current one."""
    if not directory:
        return
    path = "/" if directory.startswith("/") else ""
    for part in directory.split("/"):
        if not part:
            continue
        path = path + part if (not path or path.endswith("/")) else path + "/" + part
        if not exists(path):
            os.mkdir(path)


def write_atomic(path, data):
    """Replace the file at `path` with `data` (bytes or text). Raises OSError (full or broken flash)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path + TMP_SUFFIX
    with open(tmp, "wb") as f:
        f.write(data)
    try:
        os.rename(tmp, path)
    except OSError:
        # FAT: no rename over an existing file. A cut right here leaves only
        # the .tmp, which read_text() picks up.
        remove(path)
        os.rename(tmp, path)


def write_json(path, value):
    write_atomic(path, json.dumps(value))


def read_text(path):
    """The file's text; falls back to a complete `.tmp` left by an interrupted replace.

    Raises OSError when neither exists.
    """
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except OSError:
        with open(path + TMP_SUFFIX, "rb") as f:
            return f.read().decode("utf-8")


def read_json(path, default=None):
    """(value, error): the parsed file, or `default` and a one-line reason it could not be read.

    A missing file is no error (first boot): (default, None).
    """
    try:
        text = read_text(path)
    except OSError:
        return default, None
    except UnicodeError:
        return default, "%s is not UTF-8" % path
    try:
        return json.loads(text), None
    except ValueError:
        # A torn main file with a complete .tmp beside it: the replace was cut after the rename failed.
        try:
            with open(path + TMP_SUFFIX, "rb") as f:
                return json.loads(f.read().decode("utf-8")), None
        except (OSError, ValueError, UnicodeError):
            return default, "%s is corrupt" % path


def remove(path):
    """Delete a file; a missing one is fine."""
    try:
        os.remove(path)
    except OSError:
        pass


def listdir(directory):
    try:
        return os.listdir(directory or ".")
    except OSError:
        return []
