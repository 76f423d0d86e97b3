"""Cached onnxruntime sessions for the shipped networks (onnxruntime imported on first use)."""

from __future__ import annotations

import threading

import numpy as np

from verity.models import get_config, verify_weights, weight_path

_SESSIONS: dict[str, object] = {}
_METADATA: dict[str, dict] = {}
_LOCK = threading.Lock()


def get_session(name: str, threads: int = 1):
    """The ``onnxruntime.InferenceSession`` of model ``name``, created once per process.

    Raises
    ------
    FileNotFoundError
        When the weights are missing or fail their SHA-256 pin (message from
        :func:`verity.models.verify_weights`).
    """
    sess = _SESSIONS.get(name)
    if sess is not None:
        return sess
    with _LOCK:
        if name in _SESSIONS:
            return _SESSIONS[name]
        reason = verify_weights(name)
        if reason:
            raise FileNotFoundError(reason)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(weight_path(name)), opts, providers=["CPUExecutionProvider"])
        _SESSIONS[name] = sess
        return sess


def run_outputs(name: str, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of model ``name`` by output name, for crops (N, 3, h, w) float32 in [0, 1]."""
    get_config(name)
    sess = get_session(name)
    outs = sess.run(None, {"image": np.ascontiguousarray(batch, np.float32)})
    return {o.name: np.asarray(v) for o, v in zip(sess.get_outputs(), outs)}


def model_metadata(name: str) -> dict:
    """The JSON of the ``verity`` metadata entry of model ``name`` ({} when it has none or it is
    unreadable), parsed once per process like the session."""
    import json

    meta = _METADATA.get(name)
    if meta is not None:
        return meta
    raw = get_session(name).get_modelmeta().custom_metadata_map.get("verity")
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError:
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    _METADATA[name] = meta
    return meta
