"""``verity lab train|sample|reconstruct|nearest|fd``: small generators for making synthetic
training data (needs the ``[lab]`` extra: torch). Everything heavy is imported inside the handlers."""

from __future__ import annotations

import argparse
import json
import sys


def _need_torch() -> int | None:
    import importlib.util

    from verity.cli.main import EXIT_MISSING

    if importlib.util.find_spec("torch") is None:
        sys.stderr.write("verity lab: torch is not installed; install the lab extra: pip install 'verity[lab]'\n")
        return EXIT_MISSING
    return None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lab",
        help="train small generators (autoencoder, GAN, diffusion) and make marked synthetic images",
        description="Train an autoencoder, a GAN or a diffusion model on an image folder, sample from it, "
        "reconstruct real photos through the autoencoder, and check samples for near-copies of the "
        "training images. Every image written is marked as synthetic (XMP DigitalSourceType "
        "trainedAlgorithmicMedia + a Software text chunk). Needs torch (the [lab] extra).",
        epilog="Exit codes: 0 ok, 2 usage error or bad run folder, 3 some inputs unreadable, 4 torch or "
        "weights missing.",
    )
    lsub = p.add_subparsers(dest="lab_command", metavar="ACTION", parser_class=type(p))

    t = lsub.add_parser("train", help="train a generator on an image folder",
                        description="Train a generator. Writes RUN_DIR/run.json, checkpoint.pt, history.csv and "
                        "samples/step_N.png every --every steps; --resume continues exactly.")
    t.add_argument("family", choices=["autoencoder", "gan", "diffusion"])
    t.add_argument("--data", required=True, nargs="+", metavar="DIR", help="image folder(s), searched recursively")
    t.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/<family>)")
    t.add_argument("--size", type=int, choices=[32, 64, 128], help="image side (default 64)")
    t.add_argument("--steps", type=int, help="total training steps (default per family)")
    t.add_argument("--batch", type=int, help="batch size (default per family)")
    t.add_argument("--lr", type=float, help="learning rate (default per family)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--every", type=int, default=500, help="checkpoint + sample grid + FD every N steps (500)")
    arch = t.add_argument_group(
        "model options", "Defaults per family: see docs/lab.md or DEFAULTS in src/verity/lab/models/*.py. "
        "An option that does not apply to the chosen family is a usage error (exit 2).")
    arch.add_argument("--vae", action="store_true", help="autoencoder: variational (KL term), samples from N(0, I)")
    arch.add_argument("--loss", choices=["hinge", "ns"], help="gan: hinge (default) or non-saturating")
    arch.add_argument("--schedule", choices=["linear", "cosine"], help="diffusion: noise schedule (default cosine)")
    arch.add_argument("--pred", choices=["eps", "v", "x0"],
                      help="diffusion: the network predicts the noise, v or the clean image (default x0)")
    arch.add_argument("--ch", type=int, help="base channel width (autoencoder 16, diffusion 64; gan: sets --ngf and "
                      "--ndf)")
    arch.add_argument("--mults", type=int, nargs="+", metavar="M",
                      help="autoencoder/diffusion: width multiplier per resolution level, one level per number "
                      "(autoencoder 1 2: latent at 1/4 side; diffusion 1 2)")
    arch.add_argument("--latent", type=int, help="autoencoder: latent channels (16)")
    arch.add_argument("--upsample", choices=["transpose", "nearest"],
                      help="autoencoder/gan: learned up-sampling by transposed conv or nearest + conv "
                      "(autoencoder transpose, gan nearest)")
    arch.add_argument("--nres", type=int, help="diffusion: residual blocks per level (1)")
    arch.add_argument("--patch", type=int, choices=[1, 2, 4],
                      help="diffusion: fold PxP pixel patches into channels before the U-Net (4: 64 px -> 16x16x48)")
    arch.add_argument("--attn", type=int, nargs="*", metavar="SIDE",
                      help="diffusion: self-attention at these feature-map sides after patching (8); no value: none")
    arch.add_argument("--nz", type=int, help="gan: latent dimension (128)")
    arch.add_argument("--ngf", type=int, help="gan: generator base width (32)")
    arch.add_argument("--ndf", type=int, help="gan: discriminator base width (32)")
    arch.add_argument("--lr-d", type=float, help="gan: discriminator learning rate (4e-4; --lr is the generator's)")
    arch.add_argument("--betas", type=float, nargs=2, metavar=("B1", "B2"), help="gan: Adam betas (0.5 0.999)")
    arch.add_argument("--no-diffaug", action="store_true", help="gan: no differentiable augmentation")
    arch.add_argument("--ema", type=float, help="gan/diffusion: decay of the weight average used for sampling")
    arch.add_argument("--ddim-steps", type=int, help="diffusion: default DDIM steps of the run's sampler (50)")
    t.add_argument("--crop", choices=["random", "center"], default="random",
                   help="training crops: 'random' squares of any scale anywhere (scenes; default) or 'center': one "
                   "framed square per image (portraits, see --crop-scale, --crop-y, --jitter)")
    t.add_argument("--crop-scale", type=float, default=1.0,
                   help="--crop center: square side as a fraction of the short side (1.0)")
    t.add_argument("--crop-y", type=float, default=0.5,
                   help="--crop center: vertical centre of the square as a fraction of the height (0.5)")
    t.add_argument("--jitter", type=float, default=0.0,
                   help="--crop center: random shift and scale of up to this fraction of the side (0)")
    t.add_argument("--fd-n", type=int, default=64, help="images for the Frechet distance per checkpoint (0: off)")
    t.add_argument("--max-side", type=int, default=384, help="training images are cached at this long side (384)")
    t.add_argument("--threads", type=int, help="torch CPU threads (default min(2, cores))")
    t.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    t.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    s = lsub.add_parser("sample", help="write N marked PNG samples from a trained run")
    s.add_argument("--run", required=True, metavar="RUN_DIR")
    s.add_argument("--n", type=int, default=16)
    s.add_argument("--out", required=True, metavar="DIR")
    s.add_argument("--seed", type=int, default=0, help="same seed, same samples")
    s.add_argument("--ddim-steps", type=int, help="diffusion: DDIM steps (default from the run, 50)")
    s.add_argument("--eta", type=float, help="diffusion: DDIM noise, 0 deterministic .. 1 stochastic (default 1)")
    s.add_argument("--sampler", choices=["ddim", "ddpm"], help="diffusion: DDIM (default) or 1000-step DDPM")
    s.add_argument("--size", type=int, help="diffusion: sample side in pixels when it should differ from the trained "
                                              "one (the U-Net is fully convolutional; content is only learned at the "
                                              "trained side)")
    s.add_argument("--grid", metavar="PNG", help="also write all samples as one grid image")
    s.add_argument("--sign", action="store_true", help="also sign with C2PA when verity.provenance offers it")
    s.add_argument("--threads", type=int)
    s.add_argument("--device")
    s.add_argument("--quiet", "-q", action="store_true")
    s.set_defaults(func=_sample)

    r = lsub.add_parser("reconstruct", help="pass real images through an autoencoder run at full resolution",
                        description="Reconstruct images through a trained autoencoder by overlapping, blended "
                        "tiles: content-matched synthetic counterparts for detector training.")
    r.add_argument("inputs", nargs="+", metavar="IMG_OR_DIR")
    r.add_argument("--run", required=True, metavar="RUN_DIR")
    r.add_argument("--out", required=True, metavar="DIR")
    r.add_argument("--max-side", type=int, help="downscale inputs so the long side is at most this first")
    r.add_argument("--tile", type=int, default=256, help="tile side in pixels (256)")
    r.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (32)")
    r.add_argument("--sign", action="store_true")
    r.add_argument("--threads", type=int)
    r.add_argument("--device")
    r.add_argument("--quiet", "-q", action="store_true")
    r.set_defaults(func=_reconstruct)

    n = lsub.add_parser("nearest", help="nearest training image of each sample (near-copy check)",
                        description="For each sample, the most similar training image by cosine similarity of "
                        "MobileNetV2 features (the whole image and sliding square windows of 100/75/50%% of its short "
                        "side, downscaled to the samples' size); samples at or above --threshold are flagged as "
                        "near copies.")
    n.add_argument("--samples", required=True, metavar="DIR")
    n.add_argument("--train", required=True, nargs="+", metavar="DIR")
    n.add_argument("--threshold", type=float, help="cosine similarity flagged as a near copy (default: see docs)")
    n.add_argument("--json", action="store_true", help="JSON Lines output")
    n.add_argument("--threads", type=int)
    n.add_argument("--quiet", "-q", action="store_true")
    n.set_defaults(func=_nearest)

    f = lsub.add_parser("fd", help="Frechet distance (MobileNetV2 features, not FID) between two image folders")
    f.add_argument("a", metavar="DIR_A")
    f.add_argument("b", metavar="DIR_B")
    f.add_argument("--threads", type=int)
    f.set_defaults(func=_fd)

    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _train(args: argparse.Namespace) -> int:
    if (rc := _need_torch()) is not None:
        return rc
    from verity.lab.trainer import train

    over: dict = {}
    # family option -> families it applies to (None: all); the CLI option is the same name with dashes
    table = {
        "loss": {"gan"}, "schedule": {"diffusion"}, "pred": {"diffusion"}, "lr": None,
        "ch": {"autoencoder", "diffusion", "gan"}, "mults": {"autoencoder", "diffusion"}, "latent": {"autoencoder"},
        "upsample": {"autoencoder", "gan"}, "nres": {"diffusion"}, "patch": {"diffusion"}, "attn": {"diffusion"},
        "nz": {"gan"}, "ngf": {"gan"}, "ndf": {"gan"}, "lr_d": {"gan"}, "betas": {"gan"},
        "ema": {"gan", "diffusion"}, "ddim_steps": {"diffusion"},
    }
    # on/off flags: CLI option -> (family option, families, value when given)
    flags = {"vae": ("vae", {"autoencoder"}, True), "no_diffaug": ("diffaug", {"gan"}, False)}

    def applies(name: str, fams: set[str] | None) -> bool:
        if fams is None or args.family in fams:
            return True
        sys.stderr.write(f"verity lab train: --{name.replace('_', '-')} applies to the {'/'.join(sorted(fams))} only\n")
        return False

    for name, (key, fams, value) in flags.items():
        if getattr(args, name):
            if not applies(name, fams):
                return 2
            over[key] = value
    for name, fams in table.items():
        v = getattr(args, name)
        if v is None:
            continue
        if not applies(name, fams):
            return 2
        if name == "ch" and args.family == "gan":
            over.setdefault("ngf", v)
            over.setdefault("ndf", v)
        else:
            over[name] = list(v) if isinstance(v, list) else v
    if args.resume and over:
        sys.stderr.write("verity lab train: model options cannot change when resuming (the run keeps its "
                         "configuration); drop " + ", ".join(sorted(over)) + "\n")
        return 2
    out = args.out or f"runs/{args.family}"
    try:
        info = train(args.family, args.data, out, steps=args.steps, size=args.size, batch=args.batch, seed=args.seed,
                     every=args.every, resume=args.resume, device=args.device, threads=args.threads,
                     fd_n=args.fd_n, max_side=args.max_side, progress=not args.quiet,
                     crop=args.crop, crop_scale=args.crop_scale, crop_y=args.crop_y, jitter=args.jitter, **over)
    except KeyboardInterrupt:
        return 130
    except (KeyError, ValueError) as e:  # a bad option value rejected by the family
        msg = e.args[0] if e.args else str(e)
        sys.stderr.write(f"verity lab train: {msg}\n")
        return 2
    m = info.get("metrics", {})
    fd = m.get("fd_mobilenetv2")
    last = ", ".join(f"{k} {v:.4f}" for k, v in (m.get("mean_last_50") or {}).items())
    sys.stderr.write(f"verity lab: {info['run_id']} trained to step {info.get('steps_done')} in {out} ({last}"
                     + (f"; FD(MobileNetV2) {fd:.2f}" if fd is not None else "") + ")\n")
    return 0


def _sample(args: argparse.Namespace) -> int:
    if (rc := _need_torch()) is not None:
        return rc
    from verity.lab.trainer import set_threads

    set_threads(args.threads)
    from verity.lab.sample import sample_run

    kw = {}
    if args.ddim_steps:
        kw["steps"] = args.ddim_steps
    if args.sampler:
        kw["sampler"] = args.sampler
    if args.eta is not None:
        kw["eta"] = args.eta
    if args.n < 1:
        sys.stderr.write("verity lab sample: --n must be at least 1\n")
        return 2
    if args.size is not None:
        import json
        from pathlib import Path

        from verity.lab.trainer import RUN_JSON

        rj = Path(args.run) / RUN_JSON
        family = json.loads(rj.read_text(encoding="utf-8")).get("family") if rj.is_file() else None
        if family is not None and family != "diffusion":
            sys.stderr.write(f"verity lab sample: --size applies to diffusion runs only (this run is a {family})\n")
            return 2
        kw["size"] = args.size
    try:
        paths = sample_run(args.run, args.n, args.out, seed=args.seed, device=args.device, progress=not args.quiet,
                           sign=args.sign, **kw)
    except ValueError as e:  # e.g. a --size the U-Net cannot take
        sys.stderr.write(f"verity lab sample: {e}\n")
        return 2
    if args.grid:
        import numpy as np

        from verity.lab.data import read_rgb
        from verity.lab.marks import read_marks, write_png
        from verity.lab.sample import grid_image

        sw = read_marks(paths[0])["software"] or "verity-lab ? ?"
        _, fam, rid = (sw.split(" ", 2) + ["?", "?"])[:3]
        write_png(args.grid, grid_image(np.stack([read_rgb(p) for p in paths])), fam, rid, description="sample grid")
    sys.stderr.write(f"verity lab: wrote {len(paths)} samples to {args.out}\n")
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    if (rc := _need_torch()) is not None:
        return rc
    from verity.cli.main import EXIT_INPUT, EXIT_USAGE
    from verity.lab.sample import reconstruct_paths
    from verity.lab.trainer import set_threads

    set_threads(args.threads)
    written, failed = reconstruct_paths(args.run, args.inputs, args.out, max_side=args.max_side, tile=args.tile,
                                        overlap=args.overlap, device=args.device, progress=not args.quiet,
                                        sign=args.sign)
    for msg in failed:
        sys.stderr.write(f"verity lab: {msg}\n")
    if not written and not failed:
        sys.stderr.write("verity lab reconstruct: no image files found\n")
        return EXIT_USAGE
    sys.stderr.write(f"verity lab: wrote {len(written)} reconstructions to {args.out}\n")
    return EXIT_INPUT if failed else 0


def _nearest(args: argparse.Namespace) -> int:
    if (rc := _need_torch()) is not None:
        return rc
    from verity.lab.nearest import DEFAULT_THRESHOLD, nearest
    from verity.lab.trainer import set_threads

    set_threads(args.threads)
    thr = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    rows = nearest(args.samples, args.train, threshold=thr, progress=not args.quiet)
    flagged = 0
    for r in rows:
        flagged += r["near_copy"]
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            mark = "NEAR COPY" if r["near_copy"] else "ok"
            print(f"{r['sample']}: {mark}  cosine {r['cosine']:.3f} to {r['nearest']} ({r['view']})")
    sys.stderr.write(f"verity lab: {flagged} of {len(rows)} samples at cosine >= {thr:.2f} (near copies)\n")
    return 0


def _fd(args: argparse.Namespace) -> int:
    if (rc := _need_torch()) is not None:
        return rc
    from verity.lab.fd import folder_distance
    from verity.lab.trainer import set_threads

    set_threads(args.threads)
    d, na, nb = folder_distance(args.a, args.b)
    print(f"FD(MobileNetV2 pooled features, not FID) = {d:.3f}  ({na} vs {nb} images)")
    return 0
