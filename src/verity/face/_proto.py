"""Just enough of the protobuf wire format to read a TensorFlow ``GraphDef`` and write an ONNX
``ModelProto`` without depending on ``tensorflow`` or ``onnx`` at run time.

The wire format (https://protobuf.dev/programming-guides/encoding/) is a sequence of
``(field_number << 3 | wire_type)`` keys, each followed by a varint (type 0), 8 bytes (type 1), a
length-delimited payload (type 2) or 4 bytes (type 5).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

# ---------------------------------------------------------------------------------------------- read


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode one varint at ``pos``; returns ``(value, next_pos)``."""
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, object]]:
    """Yield ``(field_number, wire_type, value)`` for every field of one message.

    ``value`` is an int for varints, a memoryview for length-delimited fields and raw bytes for
    fixed 32/64-bit fields.
    """
    mv = memoryview(buf)
    pos, end = 0, len(mv)
    while pos < end:
        key, pos = read_varint(mv, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(mv, pos)
        elif wire == 1:
            value, pos = bytes(mv[pos : pos + 8]), pos + 8
        elif wire == 2:
            n, pos = read_varint(mv, pos)
            value, pos = mv[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = bytes(mv[pos : pos + 4]), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def packed_varints(buf: memoryview) -> list[int]:
    """Decode a packed repeated varint field."""
    out, pos = [], 0
    while pos < len(buf):
        v, pos = read_varint(buf, pos)
        out.append(v)
    return out


# --------------------------------------------------------------------------------------------- write


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # two's complement, as protobuf encodes negative int64
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(int(value))


def f_bytes(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def f_str(field: int, text: str) -> bytes:
    return f_bytes(field, text.encode())


def f_float(field: int, value: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", float(value))


# ONNX messages (onnx.proto field numbers) ---------------------------------------------------------

ONNX_FLOAT, ONNX_INT64 = 1, 7
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_INTS = 1, 2, 3, 7


def onnx_tensor(name: str, array: np.ndarray) -> bytes:
    """A ``TensorProto`` holding ``array`` (float32 or int64) as raw little-endian data."""
    a = np.ascontiguousarray(array)
    if a.dtype == np.float32:
        dtype = ONNX_FLOAT
    elif a.dtype == np.int64:
        dtype = ONNX_INT64
    else:
        raise TypeError(f"unsupported initializer dtype {a.dtype}")
    msg = b"".join(f_varint(1, d) for d in a.shape)
    msg += f_varint(2, dtype) + f_str(8, name) + f_bytes(9, a.astype(a.dtype.newbyteorder("<")).tobytes())
    return msg


def onnx_attr(name: str, value: object) -> bytes:
    """An ``AttributeProto`` for an int, float, string or list of ints."""
    msg = f_str(1, name)
    if isinstance(value, bool) or isinstance(value, (int, np.integer)):
        return msg + f_varint(3, int(value)) + f_varint(20, _ATTR_INT)
    if isinstance(value, float):
        return msg + f_float(2, value) + f_varint(20, _ATTR_FLOAT)
    if isinstance(value, str):
        return msg + f_bytes(4, value.encode()) + f_varint(20, _ATTR_STRING)
    if isinstance(value, (list, tuple)):
        return msg + b"".join(f_varint(8, int(v)) for v in value) + f_varint(20, _ATTR_INTS)
    raise TypeError(f"unsupported attribute {name}={value!r}")


def onnx_node(op: str, inputs: list[str], outputs: list[str], name: str = "", **attrs: object) -> bytes:
    """A ``NodeProto``."""
    msg = b"".join(f_str(1, i) for i in inputs) + b"".join(f_str(2, o) for o in outputs)
    msg += f_str(3, name or outputs[0]) + f_str(4, op)
    msg += b"".join(f_bytes(5, onnx_attr(k, v)) for k, v in attrs.items())
    return msg


def onnx_value_info(name: str, shape: list[int | str], elem_type: int = ONNX_FLOAT) -> bytes:
    """A ``ValueInfoProto`` for a tensor input or output (str dims are symbolic)."""
    dims = b"".join(
        f_bytes(1, f_str(2, d) if isinstance(d, str) else f_varint(1, d)) for d in shape
    )
    tensor_type = f_varint(1, elem_type) + f_bytes(2, dims)
    return f_str(1, name) + f_bytes(2, f_bytes(1, tensor_type))


def onnx_model(
    nodes: list[bytes],
    initializers: list[bytes],
    inputs: list[bytes],
    outputs: list[bytes],
    name: str = "graph",
    opset: int = 13,
    producer: str = "verity",
) -> bytes:
    """Serialise a ``ModelProto`` (IR version 7) from already-encoded parts."""
    graph = b"".join(f_bytes(1, n) for n in nodes) + f_str(2, name)
    graph += b"".join(f_bytes(5, t) for t in initializers)
    graph += b"".join(f_bytes(11, i) for i in inputs) + b"".join(f_bytes(12, o) for o in outputs)
    model = f_varint(1, 7) + f_str(2, producer) + f_bytes(7, graph)
    model += f_bytes(8, f_str(1, "") + f_varint(2, opset))
    return model
