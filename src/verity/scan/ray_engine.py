"""The Ray engine: the same :class:`~verity.scan.rows.Scanner` run by Ray Data actors.

The paths become a Ray dataset of small blocks (``batch_size`` paths each);
``Dataset.map_batches(RayScanner, concurrency=N)`` runs them on a pool of N actors, each of which
builds one ``Scanner`` (one model load) in its constructor and keeps it for every batch. Each row
travels back as its JSON text, so the driver writes exactly what the local engines write. The driver
streams the results (``iter_rows``) and appends each one to the output as it arrives.

Without an address a private local Ray is started for the scan (``num_cpus`` = the number of
workers, a 200 MB object store, no dashboard, ``RAY_AUTH_MODE=disabled`` unless set) and shut down at
the end. With ``--ray-address`` (``auto``, ``HOST:6379`` or ``ray://HOST:10001``) the scan joins that
cluster; every node must have verity installed and see the files at the same paths.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from typing import Any

from verity.scan.engine import ScanError
from verity.scan.rows import ScanConfig, Scanner

#: Object store of the private local Ray started by a scan (bytes). Rows are small; paths go in.
LOCAL_OBJECT_STORE = 200 * 1024 * 1024
#: Actor restarts and task retries before a crashing batch stops the scan (Ray's default: forever).
MAX_RESTARTS, MAX_TASK_RETRIES = 3, 2
#: Environment passed to the actors of an existing cluster (a local Ray inherits the whole environment).
FORWARDED_ENV = ("VERITY_MILVUS_URI", "VERITY_MILVUS_TOKEN", "VERITY_THREADS")


class RayScanner:
    """The ``map_batches`` callable class: one Scanner per actor, built once."""

    config: ScanConfig = ScanConfig()

    def __init__(self):
        self.scanner = Scanner(self.config)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        paths = [str(p) for p in batch["path"]]
        rows = [json.dumps(self.scanner(p), ensure_ascii=False, allow_nan=False) for p in paths]
        return {"path": paths, "row": rows}


def _missing_ray() -> ScanError:
    err = ScanError("--engine ray needs Ray Data (pip install 'verity[scale]')")
    err.exit_code = 4
    return err


#: Tries to start a private local Ray: Ray gives its raylet a fixed 30 s to register, which a busy
#: 2-core machine can miss once.
LOCAL_START_ATTEMPTS = 2


def start_ray(workers: int, address: str | None = None):
    """Connect to ``address`` or start a private local Ray; returns (ray module, started_here)."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise _missing_ray() from None
    if ray.is_initialized():
        return ray, False
    kw: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address:
            # the actors of a cluster read the index server from their own environment: pass ours on
            env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
            ray.init(address=address, runtime_env={"env_vars": env} if env else None, **kw)
        else:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            for attempt in range(LOCAL_START_ATTEMPTS):
                try:
                    ray.init(num_cpus=int(workers), object_store_memory=LOCAL_OBJECT_STORE, include_dashboard=False,
                             **kw)
                    break
                except Exception:  # noqa: BLE001 - Ray waits 30 s for its raylet: a busy machine can miss it
                    ray.shutdown()  # whatever part of the node started
                    if attempt == LOCAL_START_ATTEMPTS - 1:
                        raise
    except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError...
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ScanError(f"cannot start {where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return ray, True


def _pool_kwargs(ray, workers: int) -> dict[str, Any]:
    """A fixed pool of ``workers`` actors: ``compute=ActorPoolStrategy`` (Ray >= 2.51), else ``concurrency``."""
    n = max(1, int(workers))
    strategy = getattr(ray.data, "ActorPoolStrategy", None)
    import inspect

    from ray.data import Dataset

    if strategy is not None and "compute" in inspect.signature(Dataset.map_batches).parameters:
        return {"compute": strategy(size=n)}
    return {"concurrency": n}


def iter_ray(
    paths: list[str], config: ScanConfig, workers: int, *, address: str | None = None, batch_size: int = 4
) -> Iterator[dict[str, Any]]:
    """Rows in completion order from ``workers`` Ray Data actors."""
    if not paths:
        return
    ray, started = start_ray(workers, address)
    try:
        import ray.data

        log = logging.getLogger("ray.data")
        log.setLevel(logging.ERROR)  # no "progress bars disabled" notice; verity shows its own bar
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        batch_size = max(1, int(batch_size))
        ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=math.ceil(len(paths) / batch_size))
        # the config rides on a subclass (pickled by value) rather than as constructor arguments
        cls = type("ScanActor", (RayScanner,), {"config": config})
        # Ray Data restarts actors and retries their tasks forever by default: a file that crashes
        # its actor would hang the scan. Bounded here; past that the scan stops with an error.
        ds = ds.map_batches(cls, batch_size=batch_size, num_cpus=1, max_restarts=MAX_RESTARTS,
                            max_task_retries=MAX_TASK_RETRIES, **_pool_kwargs(ray, workers))
        try:
            for rec in ds.iter_rows():
                yield json.loads(rec["row"])
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except Exception as e:  # noqa: BLE001 - RayTaskError and friends
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ScanError(f"the Ray pipeline failed ({msg}); completed rows are kept, --resume continues") from None
    finally:
        if started:
            ray.shutdown()
