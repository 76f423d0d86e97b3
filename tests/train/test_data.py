"""verity.train.data: dataset reading, group splits, subsets, equalisation, perturbations."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from verity.core.io import decode
from verity.lab.edits import camera_exif, sd_png, textured_image
from verity.train import data as D


def _write_jpeg(path, pixels, exif=None):
    buf = io.BytesIO()
    kw = {"exif": exif} if exif else {}
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95, **kw)
    path.write_bytes(buf.getvalue())


def test_parse_extra():
    assert D.parse_extra("verdict=authentic;group=g1;note=a; b=c") == {
        "verdict": "authentic", "group": "g1", "note": "a; b=c",
    }
    assert D.parse_extra("") == {}


def test_read_class_folders(tmp_path, rng):
    img = textured_image(rng, (64, 64))
    (tmp_path / "authentic" / "camA").mkdir(parents=True)
    (tmp_path / "ai_generated").mkdir()
    (tmp_path / "notes").mkdir()  # not a class: ignored
    _write_jpeg(tmp_path / "authentic" / "camA" / "1.jpg", img)
    _write_jpeg(tmp_path / "authentic" / "camA" / "2.jpg", img)
    (tmp_path / "ai_generated" / "x.png").write_bytes(sd_png(img))
    (tmp_path / "ai_generated" / "readme.txt").write_text("not an image")
    recs = D.read_dataset(tmp_path)
    assert [r.label for r in recs] == ["authentic", "authentic", "ai_generated"] or Counter(
        r.label for r in recs
    ) == {"authentic": 2, "ai_generated": 1}
    cam = [r for r in recs if r.label == "authentic"]
    assert {r.group for r in cam} == {"authentic/camA"}  # a sub-folder is one group
    assert len({r.group for r in recs}) == 2


def test_read_csv_manifest(tmp_path):
    (tmp_path / "m.csv").write_text("path,label,group\na.jpg,authentic,g1\nb.png,AI-generated,g2\nc.jpg,real,\n")
    recs = D.read_dataset(tmp_path / "m.csv")
    by = {r.path.rsplit("/", 1)[-1]: r for r in recs}
    assert by["b.png"].label == "ai_generated" and by["a.jpg"].group == "g1"
    assert by["c.jpg"].label == "authentic" and by["c.jpg"].group == "file:c.jpg"
    assert by["a.jpg"].path == str(tmp_path / "a.jpg")


def test_corpus_family_column_reaches_extra(tmp_path):
    (tmp_path / "manifest.csv").write_text(
        "path,label,group,source,family\n"
        "ai_generated/kolors/a.png,ai_generated,g1,Kwai-Kolors/Kolors,kolors\n"
        "authentic/real/b.jpg,authentic,g2,coco,real\n"
        "ai_generated/x/c.png,ai_generated,g3,x,\n"
    )
    recs = {r.path.rsplit("/", 1)[-1]: r for r in D.read_dataset(tmp_path)}
    assert recs["a.png"].extra["family"] == "kolors" and recs["b.jpg"].extra["family"] == "real"
    assert "family" not in recs["c.png"].extra


def test_read_shared_layout(tmp_path):
    (tmp_path / "manifest.csv").write_text(
        "path,class,source,extra\n"
        "real_camera/cam/a.jpg,real_camera,cam,verdict=authentic;group=cam_A\n"
        "ai_generated/sd1/b.png,ai_generated,sd1,verdict=ai_generated;group=sd_1;note=x\n"
        "faces/frl/c.jpg,faces,frl,identity=frl:001;width=10\n"
    )
    recs = {r.path.rsplit("/", 1)[-1]: r for r in D.read_dataset(tmp_path)}
    assert recs["a.jpg"].label == "authentic" and recs["a.jpg"].group == "cam_A"
    assert recs["b.png"].label == "ai_generated" and recs["b.png"].source == "ai_generated/sd1"
    assert recs["c.jpg"].label == "authentic" and recs["c.jpg"].group == "frl:001"


@pytest.mark.parametrize(
    "content",
    ["path,label\na.jpg,banana\n", "file,kind\na.jpg,authentic\n", ""],
)
def test_bad_manifests(tmp_path, content):
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(D.DatasetError):
        D.read_dataset(tmp_path / "m.csv")


def test_missing_and_empty_dataset(tmp_path):
    with pytest.raises(D.DatasetError):
        D.read_dataset(tmp_path / "nope")
    with pytest.raises(D.DatasetError, match="sub-folders"):
        D.read_dataset(tmp_path)


def _records(n_groups=40, per=3):
    recs = []
    for g in range(n_groups):
        label = "ai_generated" if g % 4 == 0 else "authentic"
        for i in range(per + g % 3):
            recs.append(D.Record(f"/d/{g}_{i}.jpg", label, f"g{g}", source="s" + str(g % 2)))
    return recs


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_group_split_never_splits_a_group(seed):
    recs = _records()
    train, val = D.group_split(recs, 0.3, seed)
    assert len(train) + len(val) == len(recs)
    assert not ({r.group for r in train} & {r.group for r in val})
    for lab in ("authentic", "ai_generated"):
        n = sum(r.label == lab for r in recs)
        nv = sum(r.label == lab for r in val)
        assert 0.3 * n <= nv < 0.3 * n + 6  # reaches the share, overshoots by at most one group
    assert D.group_split(recs, 0.3, seed) == (train, val)  # deterministic


def test_group_split_keeps_one_group_for_training():
    recs = [D.Record("/a", "ai_generated", "only"), D.Record("/b", "authentic", "x"), D.Record("/c", "authentic", "y")]
    train, val = D.group_split(recs, 0.9, 0)
    assert any(r.label == "ai_generated" for r in train)
    with pytest.raises(ValueError):
        D.group_split(recs, 1.0)


def test_stratified_subset_balances_labels_and_sources():
    recs = _records(80, 3)
    sub = D.stratified_subset(recs, 40, seed=3)
    assert len(sub) == 40
    c = Counter(r.label for r in sub)
    assert c["ai_generated"] == 20 and c["authentic"] == 20
    assert len({r.group for r in sub}) >= 35  # round-robin over groups
    assert D.stratified_subset(recs, 40, seed=3) == sub
    assert D.stratified_subset(recs, None) == recs
    small = [r for r in recs if r.label == "ai_generated"][:5] + [r for r in recs if r.label == "authentic"]
    sub2 = D.stratified_subset(small, 30, seed=0)
    assert Counter(r.label for r in sub2) == {"ai_generated": 5, "authentic": 25}  # leftover goes elsewhere


def test_equalize_strips_metadata_and_unifies_format(rng):
    img = textured_image(rng, (96, 128))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=97, exif=camera_exif())
    cam, sd = buf.getvalue(), sd_png(img)
    eq = D.parse_equalize("jpeg90")
    a, b = D.equalize_bytes(cam, eq), D.equalize_bytes(sd, eq)
    sa, sb = decode(a), decode(b)
    assert sa.format == sb.format == "JPEG"
    for s in (sa, sb):
        assert "exif" not in s.info and "parameters" not in s.info and "icc_profile" not in s.info
    assert sa.quantization == sb.quantization  # identical encoder settings
    assert sa.pixels.shape == img.shape
    assert D.equalize_bytes(sd, eq) == b  # deterministic
    png = decode(D.equalize_bytes(sd, D.parse_equalize("png")))
    assert png.format == "PNG" and np.array_equal(png.pixels, img) and "parameters" not in png.info


@pytest.mark.parametrize("spec", ["jpeg0", "jpeg101", "webp", "jpg"])
def test_parse_equalize_rejects(spec):
    with pytest.raises(D.DatasetError):
        D.parse_equalize(spec)


def test_parse_equalize_values():
    assert D.parse_equalize("none") is None
    assert D.parse_equalize("JPEG75") == D.Equalize("jpeg", 75)
    assert D.parse_equalize("jpeg75").name == "jpeg75"


def test_parse_perturbations():
    ps = D.parse_perturbations("jpeg75, resize0.5,crop0.8,blur1,noise2,fit512")
    assert [p.name for p in ps] == ["jpeg75", "resize0.5", "crop0.8", "blur1", "noise2", "fit512"]
    assert D.parse_perturbations("") == []
    for bad in ("jpeg", "rotate10", "crop1.5", "jpeg75.5", "resize0", "fit10", "fit512.5"):
        with pytest.raises(D.DatasetError):
            D.parse_perturbations(bad)


def test_perturb_outputs(rng):
    img = textured_image(rng, (100, 160))
    base = D.Equalize("jpeg", 90)
    j = decode(D.perturb(img, D.Perturbation("jpeg", 30), base))
    assert j.format == "JPEG" and j.pixels.shape == img.shape
    assert np.abs(j.pixels.astype(int) - img).mean() > 1.0
    r = decode(D.perturb(img, D.Perturbation("resize", 0.5), base))
    assert r.pixels.shape == (50, 80, 3) and r.format == "JPEG"
    f = decode(D.perturb(img, D.Perturbation("fit", 80), base))  # long side 160 -> 80
    assert f.pixels.shape == (50, 80, 3) and f.format == "JPEG"
    f2 = decode(D.perturb(img, D.Perturbation("fit", 512), None))  # already smaller: unchanged, lossless
    assert np.array_equal(f2.pixels, img)
    c = decode(D.perturb(img, D.Perturbation("crop", 0.8), None))
    assert c.format == "PNG" and c.pixels.shape == (80, 128, 3)
    assert np.array_equal(c.pixels, img[10:90, 16:144])  # lossless, central
    n1 = D.perturb(img, D.Perturbation("noise", 3), None)
    assert n1 == D.perturb(img, D.Perturbation("noise", 3), None)  # deterministic


def test_augment_is_seeded_and_varies(rng):
    img = textured_image(rng, (600, 800))
    a = D.augment(img, np.random.default_rng(5))
    b = D.augment(img, np.random.default_rng(5))
    assert a == b
    outs = [decode(D.augment(img, np.random.default_rng(s), gray_prob=0.5)) for s in range(12)]
    shapes = {o.pixels.shape for o in outs}
    assert len(shapes) > 6
    assert all(256 * 0.5 - 1 <= min(o.pixels.shape[:2]) and max(o.pixels.shape[:2]) <= 768 for o in outs)
    assert all(o.format == "JPEG" and "exif" not in o.info for o in outs)
    quals = {o.quantization[0][0] for o in outs}
    assert len(quals) > 3  # random quality
    gray = [o for o in outs if np.array_equal(o.pixels[..., 0], o.pixels[..., 2])]
    assert 0 < len(gray) < len(outs)


@pytest.mark.parametrize("kind", D.EDIT_KINDS)
def test_synthetic_edit(rng, kind):
    host = textured_image(rng, (240, 320))
    donor = textured_image(rng, (240, 320))
    data, mask, made = D.synthetic_edit(host, donor, rng, kind=kind, quality=80)
    s = decode(data)
    assert made == kind and s.format == "JPEG" and s.pixels.shape == host.shape
    assert mask.shape == host.shape[:2] and 0.01 < mask.mean() < 0.3
    diff = np.abs(s.pixels.astype(int) - host).mean(axis=2)
    assert diff[mask].mean() > diff[~mask].mean() + 2  # the change is where the mask says


def test_synthetic_edit_without_donor_falls_back(rng):
    host = textured_image(rng, (128, 128))
    assert D.synthetic_edit(host, None, rng, kind="splice")[2] == "copy_move"
    with pytest.raises(ValueError):
        D.synthetic_edit(host[:40, :40], None, rng)


def test_fingerprint_is_location_independent():
    a = [D.Record("/x/data/a.jpg", "authentic", "g"), D.Record("/x/data/b.jpg", "edited", "h")]
    b = [D.Record("/y/other/a.jpg", "authentic", "g"), D.Record("/y/other/b.jpg", "edited", "h")]
    assert D.fingerprint(a) == D.fingerprint(b)
    assert D.fingerprint(a, 1) != D.fingerprint(a, 2)
    assert D.fingerprint(a) != D.fingerprint(a[:1] + [D.Record("/x/data/b.jpg", "authentic", "h")])


def test_read_real_shared_data(shared_data):
    recs = D.read_dataset(shared_data)
    assert len(recs) > 1000
    c = Counter(r.label for r in recs)
    assert c["ai_generated"] > 50 and c["authentic"] > 500
    assert all(r.group for r in recs)
    sd_groups = {r.group for r in recs if r.label == "ai_generated"}
    assert 10 < len(sd_groups) < c["ai_generated"]  # families, not files


def test_detector_training_paths_are_dataset_files(shared_data):
    recs = D.read_dataset(shared_data)
    paths = {r.path for r in recs}
    out = D.detector_training_paths(shared_data, recs)
    for family, ps in out.items():
        assert ps <= paths, family
        assert 0 < len(ps) < len(paths), family


def test_jpeg_native_crop_keeps_compression(rng):
    img = textured_image(rng, (300, 400))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=83, exif=camera_exif())
    orig = decode(buf.getvalue())
    out = D.jpeg_native_crop(buf.getvalue(), np.random.default_rng(2), crop_side=(100, 200))
    s = decode(out)
    h, w = s.pixels.shape[:2]
    assert h % 16 == 0 and w % 16 == 0 and 96 <= h <= 200 and 96 <= w <= 200
    assert s.quantization == orig.quantization and "exif" not in s.info
    # the crop sits on the MCU grid: find it in the original and check it is almost unchanged
    best = min(
        (np.abs(s.pixels.astype(int) - orig.pixels[y : y + h, x : x + w]).mean(), x, y)
        for y in range(0, 300 - h + 1, 16)
        for x in range(0, 400 - w + 1, 16)
    )
    assert best[0] < 0.6
    assert D.jpeg_native_crop(sd_png(img), rng) is None
    assert D.jpeg_native_crop(b"not an image", rng) is None
