from __future__ import annotations

import json

import pytest

from verity.cli.main import main
from verity.lab.marks import read_marks


def test_help_lists_actions(capsys):
    with pytest.raises(SystemExit) as e:
        main(["lab", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for a in ("train", "sample", "reconstruct", "nearest"):
        assert a in out


def test_missing_torch_exit_4(monkeypatch, capsys, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a))
    rc = main(["lab", "train", "gan", "--data", str(tmp_path), "--out", str(tmp_path / "r")])
    assert rc == 4
    err = capsys.readouterr().err
    assert "torch" in err and err.count("\n") == 1


def test_train_sample_reconstruct_cli(image_dir, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["lab", "train", "autoencoder", "--data", str(image_dir), "--out", str(run), "--size", "32",
               "--steps", "2", "--batch", "2", "--ch", "8", "--every", "1", "--fd-n", "0", "--threads", "1", "-q"])
    assert rc == 0
    info = json.loads((run / "run.json").read_text())
    assert info["steps_done"] == 2 and info["config"]["ch"] == 8
    # resume to 3 steps
    rc = main(["lab", "train", "autoencoder", "--data", str(image_dir), "--out", str(run), "--steps", "3",
               "--resume", "--fd-n", "0", "--threads", "1", "-q"])
    assert rc == 0 and json.loads((run / "run.json").read_text())["steps_done"] == 3
    # a second run into the same folder without --resume is a usage error, one line
    rc = main(["lab", "train", "autoencoder", "--data", str(image_dir), "--out", str(run), "--steps", "1", "-q"])
    assert rc == 2
    rc = main(["lab", "sample", "--run", str(run), "--n", "3", "--out", str(tmp_path / "s"), "--grid",
               str(tmp_path / "grid.png"), "-q"])
    assert rc == 0 and len(list((tmp_path / "s").glob("*.png"))) == 3
    assert read_marks(tmp_path / "grid.png")["software"].startswith("verity-lab autoencoder ")
    rc = main(["lab", "reconstruct", str(image_dir), "--run", str(run), "--out", str(tmp_path / "rec"),
               "--tile", "64", "--overlap", "16", "-q"])
    assert rc == 0 and len(list((tmp_path / "rec").glob("*.png"))) == 6
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    rc = main(["lab", "reconstruct", str(tmp_path / "broken.jpg"), "--run", str(run), "--out",
               str(tmp_path / "rec2"), "-q"])
    assert rc == 3


def test_usage_errors(image_dir, tmp_path, capsys):
    assert main(["lab", "train", "gan", "--data", str(image_dir), "--vae", "-q"]) == 2
    assert main(["lab", "train", "autoencoder", "--data", str(image_dir), "--loss", "ns", "-q"]) == 2
    assert main(["lab", "sample", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "not a lab run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["lab", "train", "vae", "--data", str(image_dir)])
    assert e.value.code == 2


def test_architecture_options(image_dir, tmp_path):
    run = tmp_path / "d"
    rc = main(["lab", "train", "diffusion", "--data", str(image_dir), "--out", str(run), "--size", "32",
               "--steps", "1", "--batch", "2", "--ch", "8", "--mults", "1", "2", "--attn", "--patch", "2",
               "--pred", "eps", "--schedule", "linear", "--ddim-steps", "3", "--every", "1", "--fd-n", "0",
               "--threads", "1", "--crop", "center", "--crop-scale", "0.9", "--jitter", "0.05", "-q"])
    assert rc == 0
    info = json.loads((run / "run.json").read_text())
    c = info["config"]
    assert (c["mults"], c["attn"], c["patch"], c["pred"], c["ddim_steps"]) == ([1, 2], [], 2, "eps", 3)
    assert (c["crop"], c["crop_scale"], c["jitter"]) == ("center", 0.9, 0.05)
    # the U-Net is fully convolutional: sample at another side (a multiple of patch 2 x 2^1 = 4)
    rc = main(["lab", "sample", "--run", str(run), "--n", "2", "--out", str(tmp_path / "big"), "--size", "48", "-q"])
    assert rc == 0
    from PIL import Image

    sizes = {Image.open(p).size for p in (tmp_path / "big").glob("*.png")}
    assert sizes == {(48, 48)}
    assert main(["lab", "sample", "--run", str(run), "--n", "1", "--out", str(tmp_path / "bad"), "--size", "50",
                 "-q"]) == 2
    g = tmp_path / "g"
    rc = main(["lab", "train", "gan", "--data", str(image_dir), "--out", str(g), "--size", "32", "--steps", "1",
               "--batch", "2", "--nz", "8", "--ngf", "8", "--ndf", "4", "--lr-d", "0.001", "--betas", "0.0", "0.9",
               "--no-diffaug", "--every", "1", "--fd-n", "0", "--threads", "1", "-q"])
    assert rc == 0
    c = json.loads((g / "run.json").read_text())["config"]
    assert (c["nz"], c["ngf"], c["ndf"], c["lr_d"], c["betas"], c["diffaug"]) == (8, 8, 4, 0.001, [0.0, 0.9], False)
    assert main(["lab", "sample", "--run", str(g), "--n", "1", "--out", str(tmp_path / "gs"), "--size", "64", "-q"]) == 2
    a = tmp_path / "a"
    rc = main(["lab", "train", "autoencoder", "--data", str(image_dir), "--out", str(a), "--size", "32",
               "--steps", "1", "--batch", "2", "--ch", "8", "--mults", "1", "2", "4", "--latent", "4",
               "--upsample", "nearest", "--every", "1", "--fd-n", "0", "--threads", "1", "-q"])
    assert rc == 0
    c = json.loads((a / "run.json").read_text())["config"]
    assert (c["mults"], c["latent"], c["upsample"]) == ([1, 2, 4], 4, "nearest")


def test_architecture_option_errors(image_dir, tmp_path, capsys):
    d = str(image_dir)
    assert main(["lab", "train", "gan", "--data", d, "--mults", "1", "2", "-q"]) == 2
    assert "applies to the autoencoder/diffusion only" in capsys.readouterr().err
    assert main(["lab", "train", "autoencoder", "--data", d, "--attn", "8", "-q"]) == 2
    assert main(["lab", "train", "diffusion", "--data", d, "--no-diffaug", "-q"]) == 2
    capsys.readouterr()
    # a value the family rejects: one line, exit 2
    rc = main(["lab", "train", "gan", "--data", d, "--out", str(tmp_path / "x"), "--upsample", "transpose",
               "--loss", "hinge", "--size", "32", "--steps", "1", "--batch", "2", "--ngf", "4", "--ndf", "4",
               "--nz", "4", "--fd-n", "0", "-q", "--crop", "center", "--crop-scale", "2"])
    assert rc == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "x").exists()  # rejected before the run folder is made
    # changing the model when resuming is refused
    assert main(["lab", "train", "diffusion", "--data", d, "--out", str(tmp_path / "y"), "--resume", "--ch", "8",
                 "-q"]) == 2
