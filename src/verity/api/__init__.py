"""verity.api: the HTTP API and web page (FastAPI; ``pip install 'verity[api]'``).

``create_app(settings)`` builds the application; ``verity serve`` runs it with uvicorn. Importing
this package is cheap: FastAPI is imported when an app is created.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from verity.api.app import create_app

        return create_app
    if name == "Settings":
        from verity.api.settings import Settings

        return Settings
    raise AttributeError(name)
