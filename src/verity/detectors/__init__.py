"""Every detector module under this package is imported here so that it registers itself.

Modules must be cheap to import: heavy dependencies are imported inside ``run``.
"""

import importlib
import pkgutil


def _import_all() -> None:
    for mod in pkgutil.walk_packages(__path__, prefix=__name__ + "."):
        importlib.import_module(mod.name)


_import_all()
