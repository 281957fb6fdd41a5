"""A process forked while another thread of its parent is inside a SQLite write transaction can still
write (the supervisor forks workers while the master's jobs thread and audit writer write)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from openkms.storage.migrate import upgrade_database
from openkms.storage.sql import SqlStore


def test_fork_during_a_write_transaction_of_another_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade_database(url)
    store = SqlStore(url)
    inside = threading.Event()

    def writer() -> None:
        for _ in range(3):
            with store.tx() as tx:
                tx.bump_generation()
                inside.set()
                time.sleep(0.3)  # the fork below happens while this transaction is open

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(10)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            child = SqlStore(url)
            with child.tx() as tx:
                tx.bump_generation()
            code = 0
        finally:
            os._exit(code)
    started = time.monotonic()
    waited = 0
    while time.monotonic() - started < 30:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            waited = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        waited = -1
    thread.join()
    assert waited == 0, "the forked child could not write (hung or found the database locked)"
    with store.tx() as tx:
        assert tx.get_generation() == 4
    store.close()
