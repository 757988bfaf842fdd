"""Test-only fault injection for tests/test_kill.py: a pause between an atomic write and its rename.

Python imports `sitecustomize` at startup from any directory on its path, so a process started with this
directory on PYTHONPATH and LMFORECAST_PAUSE_BEFORE_RENAME=NAME set sleeps before `os.replace` moves a
temporary onto a file named NAME (lmforecast/io.py's last step). The test then finds the temporary and
kills the writer before the rename, however loaded the machine: a small table is otherwise written and
renamed within a millisecond, faster than a poll that the scheduler delays can see its temporary.
"""

import os
import time

_NAME = os.environ.get("LMFORECAST_PAUSE_BEFORE_RENAME")

if _NAME:
    _replace = os.replace

    def _paused_replace(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == _NAME:
            time.sleep(60)  # the test kills the writer meanwhile; if it does not, the write completes
        return _replace(src, dst, *args, **kwargs)

    os.replace = _paused_replace
