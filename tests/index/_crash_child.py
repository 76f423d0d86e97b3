"""Child process of the crash test: adds synthetic records in batches forever, printing each
acknowledged SHA-256 as soon as ``IndexStore.add`` returns (``python -m tests.index._crash_child DIR START``)."""

from __future__ import annotations

import sys

from tests.index._synthetic import synthetic_record
from verity.index.store import IndexStore


def main() -> None:
    index_dir, start = sys.argv[1], int(sys.argv[2])
    store = IndexStore(index_dir, create=True, checkpoint_every=40)
    print("ready", flush=True)
    i = start
    while True:
        batch = [synthetic_record(j) for j in range(i, i + 7)]
        for sha in store.add(batch):
            print(sha, flush=True)
        i += 7


if __name__ == "__main__":
    main()
