"""generator_metadata and digital_source_type: generated images declared by their metadata."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from verity.core.io import load_sample
from verity.core.registry import create_detector
from verity.lab.edits import camera_exif, encode_jpeg, sd_png, textured_image
from verity.pipeline import Pipeline

METADATA = ["generator_metadata", "digital_source_type", "exif_camera", "edit_history", "exif_thumbnail", "jpeg_qtables"]


@pytest.fixture(scope="module")
def img():
    return textured_image(np.random.default_rng(3), (192, 256))


@pytest.fixture(scope="module")
def pipe():
    return Pipeline(METADATA)


def _png(img, **texts) -> bytes:
    info = PngInfo()
    for k, v in texts.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _xmp(term: str, tool: str = "Some Tool 1.0") -> str:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
        f"<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/{term}</Iptc4xmpExt:DigitalSourceType>"
        f"<xmp:CreatorTool>{tool}</xmp:CreatorTool></rdf:Description></rdf:RDF></x:xmpmeta>"
    )


def test_sd_png_is_ai_generated_with_evidence(img, pipe):
    """Issue-2 acceptance for the metadata group."""
    v = pipe.analyze(load_sample(sd_png(img, seed=1234), name="sd.png"))
    assert v.verdict == "ai_generated", v.probabilities
    f = v.finding("generator_metadata")
    assert f.score >= 0.99
    e = f.evidence[0]
    assert e.startswith("PNG text chunk 'parameters' holds a Stable Diffusion prompt (Steps 20, Sampler Euler a")
    assert "seed 1234" in e and "astronaut" in e
    assert f.details["hits"][0]["params"]["seed"] == "1234"


def test_plain_png_abstains(img):
    f = create_detector("generator_metadata").run(load_sample(_png(img, Comment="holiday in Lisbon")))
    assert f.score is None and f.evidence


@pytest.mark.parametrize(
    "texts,generator",
    [
        ({"prompt": json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20}},
                                "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox"}}})}, "ComfyUI"),
        ({"Dream": '"a cat" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms'}, "InvokeAI"),
        ({"Software": "NovelAI", "Comment": json.dumps({"steps": 28, "sampler": "k_euler", "seed": 1, "scale": 11, "uc": "x"})}, "NovelAI"),
        ({"Software": "Midjourney"}, "Midjourney"),
        ({"Description": "Made with Adobe Firefly"}, "Adobe Firefly"),
    ],
)  # fmt: skip
def test_other_generators(img, pipe, texts, generator):
    v = pipe.analyze(load_sample(_png(img, **texts)))
    f = v.finding("generator_metadata")
    assert f.score > 0.8 and any(generator in e for e in f.evidence), f.evidence
    assert v.verdict == "ai_generated"


def test_a1111_in_jpeg_user_comment(img, pipe):
    ex = Image.Exif()
    ex.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + "a dog\nSteps: 30, Sampler: Euler, CFG scale: 7, Seed: 77, Size: 256x192".encode("utf-16-be")
    v = pipe.analyze(load_sample(encode_jpeg(img, 90, exif=ex.tobytes())))
    f = v.finding("generator_metadata")
    assert f.score == pytest.approx(0.99) and "EXIF 'UserComment'" in f.evidence[0] and "seed 77" in f.evidence[0]
    assert v.verdict == "ai_generated"


def test_caption_mention_is_weaker_than_settings(img):
    det = create_detector("generator_metadata")
    mention = det.run(load_sample(_png(img, Description="This picture was made with Midjourney")))
    settings = det.run(load_sample(sd_png(img)))
    assert 0.5 < mention.score < settings.score


@pytest.mark.parametrize(
    "term,label,above",
    [
        ("trainedAlgorithmicMedia", "ai_generated", True),
        ("compositeWithTrainedAlgorithmicMedia", "edited", True),
        ("digitalCapture", "ai_generated", False),
    ],
)
def test_digital_source_type(img, term, label, above):
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _xmp(term))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", pnginfo=info)
    f = create_detector("digital_source_type").run(load_sample(buf.getvalue()))
    assert label in f.labels and (f.score > 0.5) == above
    assert f"'{term}'" in f.evidence[0]


def test_digital_source_type_in_jpeg_xmp_makes_the_verdict(img, pipe):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90, xmp=_xmp("trainedAlgorithmicMedia").encode())
    v = pipe.analyze(load_sample(buf.getvalue()))
    assert v.finding("digital_source_type").score > 0.9
    assert v.verdict == "ai_generated"


def test_synthetic_term_wins_over_capture(img):
    x = _xmp("digitalCapture").replace("</rdf:Description>", (
        "<xmpMM:Ingredients><rdf:Bag><rdf:li>http://cv.iptc.org/newscodes/digitalsourcetype/"
        "compositeWithTrainedAlgorithmicMedia</rdf:li></rdf:Bag></xmpMM:Ingredients></rdf:Description>"))  # fmt: skip
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", xmp=x.encode())
    f = create_detector("digital_source_type").run(load_sample(buf.getvalue()))
    assert f.details["chosen"] == "compositeWithTrainedAlgorithmicMedia" and f.labels == ["edited"]


def test_no_xmp_abstains(img):
    s = load_sample(encode_jpeg(img, 90, exif=camera_exif()))
    assert create_detector("digital_source_type").run(s).score is None
