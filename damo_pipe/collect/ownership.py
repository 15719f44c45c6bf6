"""Which kdamonds damo-pipe created: the ownership file (default /run/damo-pipe/owned.json).

One JSON object ``{"kdamonds": [entry, ...]}``; an entry names the admin root, the
kdamond index, the kdamond thread's pid (``kdamonds/N/pid`` when it was started), the
``nr_kdamonds`` value found before we created it (to restore), the process that
created it and a description. ``damo-collect`` only ever turns off, reconfigures or
snapshots a kdamond listed here whose current pid still matches.
"""
from __future__ import annotations

import json
import os
import time

from damo_pipe.errors import CollectError

DEFAULT_STATE_FILE = "/run/damo-pipe/owned.json"
STATE_FILE_ENV = "DAMO_PIPE_STATE_FILE"


def default_state_file():
    return os.environ.get(STATE_FILE_ENV) or DEFAULT_STATE_FILE


class OwnershipFile:
    def __init__(self, path=None):
        self.path = os.fspath(path) if path else default_state_file()

    def load(self):
        try:
            with open(self.path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            raise CollectError("cannot read ownership file %s: %s" % (self.path, e)) from None
        entries = data.get("kdamonds", []) if isinstance(data, dict) else []
        return [e for e in entries if isinstance(e, dict)]

    def _save(self, entries):
        d = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(d, exist_ok=True)
            tmp = "%s.%d.tmp" % (self.path, os.getpid())
            with open(tmp, "w") as f:
                json.dump({"kdamonds": entries}, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            raise CollectError("cannot write ownership file %s: %s" % (self.path, e)) from None

    def find(self, admin_root, kdamond_idx=None):
        root = os.path.abspath(admin_root)
        return [e for e in self.load() if e.get("admin_root") == root
                and (kdamond_idx is None or e.get("kdamond_idx") == kdamond_idx)]

    def add(self, admin_root, kdamond_idx, **info):
        entries = [e for e in self.load() if not (e.get("admin_root") == os.path.abspath(admin_root)
                                                   and e.get("kdamond_idx") == kdamond_idx)]
        entry = {"admin_root": os.path.abspath(admin_root), "kdamond_idx": kdamond_idx,
                 "owner_pid": os.getpid(), "created_unix": time.time()}
        entry.update(info)
        entries.append(entry)
        self._save(entries)
        return entry

    def update(self, admin_root, kdamond_idx, **info):
        entries = self.load()
        for e in entries:
            if e.get("admin_root") == os.path.abspath(admin_root) and e.get("kdamond_idx") == kdamond_idx:
                e.update(info)
        self._save(entries)

    def remove(self, admin_root, kdamond_idx):
        entries = self.load()
        keep = [e for e in entries if not (e.get("admin_root") == os.path.abspath(admin_root)
                                           and e.get("kdamond_idx") == kdamond_idx)]
        if len(keep) != len(entries):
            self._save(keep)
