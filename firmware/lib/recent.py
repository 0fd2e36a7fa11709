"""RecentIds: a short, bounded list of ids remembered on flash.

Used for what must not happen twice across a reboot: a rating request
already answered (so a retained request delivered again does not reopen),
a command already run. The newest `limit` ids are kept; the file is
replaced atomically on every add. With `path=None` it lives in RAM only
(tests, or a board whose flash is broken: the device keeps working).
"""

from firmware.lib import flashfs


class RecentIds:
    def __init__(self, path=None, limit=32, log=print):
        self.path = path
        self.limit = limit
        self.error = None  # the last load/save problem, one line, for the health message
        self._log = log
        self._ids = []
        if path is not None:
            value, error = flashfs.read_json(path, [])
            if error is None and not isinstance(value, list):
                error = "%s is not a list" % path
            if error is not None:
                self._report(error)
                value = []
            self._ids = [item for item in value if isinstance(item, str)][-limit:]

    def __contains__(self, item):
        return item in self._ids

    def __len__(self):
        return len(self._ids)

    def ids(self):
        return list(self._ids)

    def add(self, item):
        """Remember `item` (saved before returning). False if it was already known."""
        if item in self._ids:
            return False
        self._ids.append(item)
        if len(self._ids) > self.limit:
            self._ids.pop(0)
        if self.path is not None:
            try:
                flashfs.write_json(self.path, self._ids)
            except OSError as exc:
                # Remembered in RAM for this boot; a full flash must not stop the device.
                self._report("%s not saved: %s" % (self.path, exc))
        return True

    def _report(self, text):
        self.error = text
        if self._log is not None:
            self._log("recent: " + text)
