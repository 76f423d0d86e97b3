"""Train a lab generator on an image folder, with checkpoints, sample grids and exact resume.

A run folder holds::

    run.json            configuration, data fingerprint, progress and metrics (rewritten at checkpoints)
    checkpoint.pt       networks, EMA copies, optimisers, RNG states, step, loss history
    samples/step_NNNNNN.png   a sample grid (autoencoder: originals above reconstructions)
    history.csv         the loss of every step

Resuming (``resume=True``) restores the networks, the optimisers, the data-sampling RNG, the noise
RNG, torch's global RNG and the step counter, so a run trained for 2 + 2 steps gives the same losses
as one trained for 4 steps (same machine, same thread count).
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from verity.core.errors import VerityError
from verity.lab.data import ImageSet, fingerprint, list_images, split_heldout, to_tensor

CHECKPOINT = "checkpoint.pt"
RUN_JSON = "run.json"
#: seed of the fixed noise used for the grids and the Frechet distance at each checkpoint
EVAL_SEED = 12345


class RunError(VerityError):
    code = "bad_run"
    exit_code = 2


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def set_threads(threads: int | None) -> None:
    import torch

    n = threads or min(2, os.cpu_count() or 1)
    torch.set_num_threads(max(1, int(n)))
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # noqa: BLE001
        pass


def _json_dump(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _torch_save(path: Path, obj: Any) -> None:
    import torch

    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_run(run_dir: str | os.PathLike, device: str | None = None, with_optimizers: bool = False):
    """Load a run folder: returns ``(family, info)`` with the family's weights restored.

    Raises
    ------
    RunError
        When the folder has no ``checkpoint.pt`` or ``run.json``.
    """
    import torch

    from verity.lab.models import create_family, stored_config

    d = Path(run_dir)
    ck, rj = d / CHECKPOINT, d / RUN_JSON
    if not ck.is_file() or not rj.is_file():
        raise RunError(f"{d} is not a lab run (no {CHECKPOINT} / {RUN_JSON}); train one with `verity lab train`")
    info = json.loads(rj.read_text(encoding="utf-8"))
    state = torch.load(ck, map_location="cpu", weights_only=False)
    fam = create_family(state["family"], device=device or default_device(),
                        **stored_config(state["family"], state["family_state"]["cfg"]))
    fam.load_state_dict(state["family_state"], with_optimizers=with_optimizers)
    fam.eval()
    return fam, info


def train(
    family: str,
    data: str | os.PathLike | list,
    out: str | os.PathLike,
    *,
    steps: int | None = None,
    size: int | None = None,
    batch: int | None = None,
    seed: int = 0,
    every: int = 500,
    resume: bool = False,
    device: str | None = None,
    threads: int | None = None,
    fd_n: int = 64,
    max_side: int = 384,
    heldout: float = 0.1,
    grid: int = 36,
    progress: bool = True,
    crop: str = "random",
    crop_scale: float = 1.0,
    crop_y: float = 0.5,
    jitter: float = 0.0,
    **overrides: Any,
) -> dict[str, Any]:
    """Train (or resume) a run; returns the final ``run.json`` contents.

    Parameters
    ----------
    family : {"autoencoder", "gan", "diffusion"}
    data : path or list of paths
        Folder(s) of images (searched recursively). 10 % of the files (by a hash of the path) are held
        out for the Frechet distance and the autoencoder's preview.
    out : path
        Run folder (created). Without ``resume`` it must not already hold a checkpoint.
    steps : int
        Total optimisation steps of the run (a resumed run trains until it reaches it). Default:
        the family's ``steps``.
    size, batch : int
        Image side (64 or 128) and batch size; default from the family.
    seed : int
        Seeds the data sampler, the noise and the initialisation.
    every : int
        Checkpoint, grid and Frechet distance every this many steps (and at the end).
    fd_n : int
        Samples and held-out crops for the Frechet distance; 0 disables it.
    crop, crop_scale, crop_y, jitter
        How training crops are taken (see :class:`verity.lab.data.ImageSet`): ``"random"`` squares
        of any scale (scenes), or ``"center"``: one framed square per image, ``crop_scale`` of the
        short side centred at ``crop_y`` of the height, jittered by up to ``jitter`` (portraits).
        Stored in ``run.json``; a resumed run uses the stored values.
    overrides
        Family options (see ``DEFAULTS`` in each family module), e.g. ``vae=True``, ``lr=...``.
    """
    import torch

    from verity.lab.models import create_family, default_config, stored_config

    set_threads(threads)
    device = device or default_device()
    out = Path(out)
    ck_path = out / CHECKPOINT
    state: dict[str, Any] | None = None
    if resume:
        if not ck_path.is_file():
            raise RunError(f"nothing to resume: {ck_path} does not exist")
        state = torch.load(ck_path, map_location="cpu", weights_only=False)
        if state["family"] != family:
            raise RunError(f"{out} is a {state['family']} run, not {family}")
        cfg = stored_config(family, state["family_state"]["cfg"])
        info = json.loads((out / RUN_JSON).read_text(encoding="utf-8"))
        seed = int(info["config"]["seed"])
        crop = info["config"].get("crop", "random")
        crop_scale = float(info["config"].get("crop_scale", 1.0))
        crop_y = float(info["config"].get("crop_y", 0.5))
        jitter = float(info["config"].get("jitter", 0.0))
        max_side = int(info["config"].get("max_side", max_side))
        if steps is not None:
            cfg["steps"] = int(steps)
    else:
        if ck_path.is_file():
            raise RunError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        cfg = default_config(family, size=size, batch=batch, steps=steps, **overrides)
        if cfg["size"] not in (32, 64, 128, 256) and cfg["size"] % 16:
            raise RunError(f"--size must be a multiple of 16 (64 or 128 recommended), got {cfg['size']}")
    steps = int(cfg["steps"])
    ImageSet([], cfg["size"], max_side, crop_mode=crop, crop_scale=crop_scale, crop_y=crop_y,
             jitter=jitter)  # validates the crop options before anything is written

    roots = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not roots:
        raise RunError("no data folder given")
    files = sorted({f for r in roots for f in list_images(r)})
    common = os.path.commonpath([str(Path(r).resolve()) for r in roots])
    files = [f.resolve() for f in files]
    fp = fingerprint(files, common)
    train_files, held_files = split_heldout(files, common, heldout)
    if state is not None and info["data"]["fingerprint"] != fp:
        sys.stderr.write(f"verity lab: warning: the data in {roots} changed since the run started "
                         "(fingerprint differs); resuming anyway\n")

    torch.manual_seed(seed)
    fam = create_family(family, device=device, **cfg)
    data_rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    history: list[dict[str, float]] = []
    fd_hist: list[dict[str, float]] = []
    if state is None:
        run_id = f"{family}-{_dt.datetime.now():%Y%m%d-%H%M%S}-s{seed}"
        info = {
            "run_id": run_id,
            "family": family,
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "config": {**cfg, "seed": seed, "every": every, "fd_n": fd_n, "max_side": max_side,
                       "heldout": heldout, "crop": crop, "crop_scale": crop_scale,
                       "crop_y": crop_y, "jitter": jitter, "device": device, "threads": torch.get_num_threads()},
            "data": {"dirs": [str(Path(r).resolve()) for r in roots], "files": len(files), "train_files": len(train_files),
                     "heldout_files": len(held_files), "fingerprint": fp},
            "params": fam.n_params(),
        }
    else:
        fam.load_state_dict(state["family_state"], with_optimizers=True)
        data_rng.bit_generator.state = state["data_rng"]
        gen.set_state(state["noise_rng"])
        torch.set_rng_state(state["torch_rng"])
        history = list(state.get("history", []))
        fd_hist = list(state.get("fd", []))
        run_id = info["run_id"]

    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    framing = {"crop_mode": crop, "crop_scale": crop_scale, "crop_y": crop_y}
    trainset = ImageSet(train_files, cfg["size"], max_side, jitter=jitter, **framing).load(progress=progress)
    # held-out crops for the grid and the Frechet distance: same framing, no jitter
    heldset = ImageSet(held_files, cfg["size"], max_side, **framing).load() if held_files else None
    info["data"]["train_images_decoded"] = len(trainset.images)
    _json_dump(out / RUN_JSON, info)

    eval_real = None
    if heldset is not None:
        eval_real = heldset.fixed_crops(max(fd_n, grid), seed=EVAL_SEED)
    elif trainset is not None:
        eval_real = trainset.fixed_crops(grid, seed=EVAL_SEED)

    def checkpoint() -> None:
        from verity.lab.sample import save_grid

        fam.eval()
        preview = fam.preview(to_tensor(eval_real[:grid]) if eval_real is not None else None, grid,
                              torch.Generator().manual_seed(EVAL_SEED))
        save_grid(out / "samples" / f"step_{fam.step:06d}.png", preview, family, run_id)
        if fd_n and heldset is not None:
            fd = _frechet(fam, eval_real[:fd_n], fd_n)
            if fd is not None:
                fd_hist.append({"step": fam.step, "fd_mobilenetv2": fd})
        fam.train()
        _torch_save(ck_path, {
            "family": family,
            "family_state": fam.state_dict(),
            "data_rng": data_rng.bit_generator.state,
            "noise_rng": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": history,
            "fd": fd_hist,
            "run_id": run_id,
        })
        with (out / "history.csv").open("w", newline="") as fh:
            keys = sorted({k for h in history for k in h} - {"step"})
            w = csv.writer(fh)
            w.writerow(["step", *keys])
            for h in history:
                w.writerow([h["step"], *(f"{h[k]:.6g}" if k in h else "" for k in keys)])
        last = history[-1] if history else {}
        window = history[-50:]
        info["steps_done"] = fam.step
        info["updated"] = _dt.datetime.now().isoformat(timespec="seconds")
        info["metrics"] = {
            "last": {k: v for k, v in last.items() if k != "step"},
            "mean_last_50": {k: float(np.mean([h[k] for h in window if k in h]))
                             for k in (last.keys() - {"step"})},
            "fd_mobilenetv2": fd_hist[-1]["fd_mobilenetv2"] if fd_hist else None,
            "fd_history": fd_hist,
            "fd_note": "Frechet distance on MobileNetV2 pooled features between samples and held-out "
                       "real crops; NOT the Inception FID and not comparable to published FIDs.",
        }
        _json_dump(out / RUN_JSON, info)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=fam.step, desc=f"{family}", unit="step", file=sys.stderr,
                   dynamic_ncols=True, mininterval=1.0)
    fam.train()
    try:
        while fam.step < steps:
            x = to_tensor(trainset.batch(cfg["batch"], data_rng))
            losses = fam.train_step(x, gen)
            fam.step += 1
            history.append({"step": fam.step, **losses})
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()}, refresh=False)
            if fam.step % every == 0 or fam.step == steps:
                checkpoint()
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        sys.stderr.write(f"verity lab: interrupted at step {fam.step}; saving a checkpoint (resume with --resume)\n")
        checkpoint()
        raise
    finally:
        if bar is not None:
            bar.close()
    info["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    _json_dump(out / RUN_JSON, info)
    info["history"] = history
    return info


def _frechet(fam, real: np.ndarray, n: int) -> float | None:
    """Frechet distance (MobileNetV2 features) between ``n`` samples and the real crops."""
    import torch

    from verity.lab import fd as fdmod
    from verity.lab.data import to_uint8

    try:
        extractor = fdmod.FeatureExtractor.shared()
    except fdmod.WeightsMissing:
        return None
    g = torch.Generator().manual_seed(EVAL_SEED + 1)
    fake = np.concatenate([to_uint8(fam.sample(min(32, n - i), g)) for i in range(0, n, 32)])
    return float(fdmod.frechet_distance(extractor.features(fake), extractor.features(real)))
