"""Child process of the sharing tests: holds an index open until its stdin closes.

``python -m tests.index._hold_child DIR MODE``; MODE ``read`` (a read-only store, like ``verity serve``),
``write`` (a writer that adds records 500.. in batches of 5 and prints each acknowledged SHA-256, then
waits), or ``lock`` (a foreign program: flocks ``milvus.db/LOCK`` without publishing a port).
"""

from __future__ import annotations

import fcntl
import os
import sys


def main() -> None:
    index_dir, mode = sys.argv[1], sys.argv[2]
    if mode == "lock":
        fd = os.open(os.path.join(index_dir, "milvus.db", "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("ready", flush=True)
        sys.stdin.read()
        return
    from verity.index.store import IndexStore

    store = IndexStore(index_dir, read_only=mode == "read", create=mode == "write")
    print("ready", store.count(), flush=True)
    if mode == "write":
        from tests.index._synthetic import synthetic_record

        for i in range(500, 510, 5):
            for sha in store.add([synthetic_record(j) for j in range(i, i + 5)]):
                print(sha, flush=True)
        print("done", flush=True)
    sys.stdin.read()
    store.close()


if __name__ == "__main__":
    main()
