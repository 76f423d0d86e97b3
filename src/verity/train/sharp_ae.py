"""Sharp content-matched fakes: real photos reconstructed through small autoencoders.

The "aligned dataset" idea (Rajan et al. 2024; B-Free, Guillaro et al. 2025): pass real photos
through a generator's decoder and call the result fake. Real and fake then share content, camera
and format; the only systematic difference is the trace of the decoder, above all of its
up-sampling layers, which NPR (Tan et al. 2024) argues is shared by most generators.

The autoencoders used for this must therefore be **sharp**: a blurry reconstruction teaches a
detector "soft = generated" (what verity's first models learned: they rated sharp Stable Diffusion
images as more real than real photos). Each :class:`SharpAutoencoder` reduces the resolution only
2x (or 4x) into a wide latent and is trained with L1 plus a Fourier-amplitude term, so that after
400 steps its reconstructions of held-out photos reach about 30-33 dB PSNR with most of the photo's
fine detail (plain L1 keeps only half of the high-frequency energy), and decodes with one of four
up-sampling layers found in generators:

``deconv``
    4x4 transposed convolution, stride 2 (DCGAN/StyleGAN-era generators);
``nearest``
    nearest-neighbour 2x + 3x3 convolution (the Stable Diffusion VAE decoder);
``bilinear``
    bilinear 2x + 3x3 convolution;
``shuffle``
    3x3 convolution to 4x channels + pixel shuffle (sub-pixel convolution, many super-resolution
    and video decoders).

Everything is seeded (initialisation, crops, order), and whole images are reconstructed at native
resolution through overlapping tiles. Needs torch (the ``[train]`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Up-sampling layers known to :class:`SharpAutoencoder`.
UP_KINDS = ("deconv", "nearest", "bilinear", "shuffle")


@dataclass(frozen=True)
class AESpec:
    """One autoencoder of the fake-making recipe."""

    up: str
    factor: int = 2  # total spatial reduction (2 or 4)
    latent: int = 8  # channels of the code (per factor x factor cell of 3 x factor**2 values)
    width: int = 32
    freq_weight: float = 0.0  # weight of the Fourier-amplitude loss (0: plain L1)

    @property
    def name(self) -> str:
        return f"{self.up}_x{self.factor}"


#: The recipe used by ``verity train detector``: four decoders, two at 2x and two at 4x.
DEFAULT_SPECS = (
    AESpec("nearest", 2, 8),
    AESpec("deconv", 2, 8),
    AESpec("bilinear", 4, 24),
    AESpec("shuffle", 4, 24),
)


def _build(torch, spec: AESpec):
    from torch import nn

    if spec.up not in UP_KINDS:
        raise ValueError(f"unknown up-sampling {spec.up!r}; known: {', '.join(UP_KINDS)}")
    if spec.factor not in (2, 4):
        raise ValueError("factor must be 2 or 4")
    w = spec.width
    n = {2: 1, 4: 2}[spec.factor]

    enc = [nn.Conv2d(3, w, 3, 1, 1), nn.ReLU(inplace=True)]
    for _ in range(n):
        enc += [nn.Conv2d(w, w, 4, 2, 1), nn.ReLU(inplace=True)]
    enc += [nn.Conv2d(w, spec.latent, 1)]

    def up_layer():
        if spec.up == "deconv":
            return [nn.ConvTranspose2d(w, w, 4, 2, 1), nn.ReLU(inplace=True)]
        if spec.up == "shuffle":
            return [nn.Conv2d(w, 4 * w, 3, 1, 1), nn.PixelShuffle(2), nn.ReLU(inplace=True)]
        return [nn.Upsample(scale_factor=2, mode=spec.up), nn.Conv2d(w, w, 3, 1, 1), nn.ReLU(inplace=True)]

    dec = [nn.Conv2d(spec.latent, w, 3, 1, 1), nn.ReLU(inplace=True)]
    for _ in range(n):
        dec += up_layer()
    dec += [nn.Conv2d(w, 3, 3, 1, 1)]

    class SharpAutoencoder(nn.Module):
        """Encoder (stride-2 convs to a ``latent``-channel code) and decoder (``up`` layers).

        Input and output RGB in [0, 1]; the output is the input plus a learned correction of the
        decoder (no skip connection crosses the bottleneck).
        """

        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(*enc)
            self.dec = nn.Sequential(*dec)

        def forward(self, x):
            return self.dec(self.enc(x - 0.5)) + 0.5

    return SharpAutoencoder()


def train_autoencoder(torch, spec: AESpec, photos: list[np.ndarray], steps: int, seed: int,
                      side: int = 64, batch: int = 12, lr: float = 2e-3):
    """Train one autoencoder on random ``side`` px crops of ``photos`` (Adam, cosine decay).

    The loss is L1, plus ``spec.freq_weight`` times the mean absolute difference of the Fourier
    amplitude spectra of reconstruction and crop (it pushes the decoder to restore the photo's
    amount of fine detail: with plain L1 the reconstructions keep only about half of the photo's
    high-frequency energy, so "soft" would mark them).

    Returns
    -------
    model : torch.nn.Module (eval mode)
    final_loss : float
        Mean training loss of the last 20 steps (L1 on [0, 1] values, plus the weighted
        Fourier-amplitude term when ``spec.freq_weight`` > 0).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ae = _build(torch, spec)
    opt = torch.optim.Adam(ae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps), eta_min=lr * 0.05)
    photos = [p for p in photos if min(p.shape[:2]) >= side]
    if not photos:
        raise ValueError("no photo large enough to train an autoencoder")
    hist = []
    ae.train()
    for _ in range(max(0, steps)):
        xs = []
        for _ in range(batch):
            p = photos[int(rng.integers(len(photos)))]
            y, x = int(rng.integers(0, p.shape[0] - side + 1)), int(rng.integers(0, p.shape[1] - side + 1))
            c = p[y:y + side, x:x + side]
            if rng.random() < 0.5:
                c = c[:, ::-1]
            xs.append(c)
        xb = torch.from_numpy(np.ascontiguousarray(np.stack(xs))).permute(0, 3, 1, 2).float() / 255
        rec = ae(xb)
        loss = (rec - xb).abs().mean()
        if spec.freq_weight > 0:
            # match the amplitude spectrum (not the phase): the decoder must put back as much fine
            # detail as the photo has, even where it cannot reproduce it exactly (as GAN- and
            # perceptually-trained generator decoders do), so that softness is not what marks it
            fa = torch.fft.rfft2(rec, norm="ortho").abs()
            fb = torch.fft.rfft2(xb, norm="ortho").abs()
            loss = loss + spec.freq_weight * (fa - fb).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        hist.append(float(loss.detach()))
    ae.eval()
    return ae, float(np.mean(hist[-20:])) if hist else float("nan")


def reconstruct(torch, ae, pixels: np.ndarray, factor: int, tile: int = 384, overlap: int = 16) -> np.ndarray:
    """Reconstruct a whole (H, W, 3) uint8 image through ``ae`` at native resolution, tile by tile.

    Tiles of ``tile`` px overlap by ``overlap`` px on each side; only their centres are kept, so
    tile borders leave no seam. H and W are cropped to multiples of ``factor``.
    """
    h, w = pixels.shape[0] // factor * factor, pixels.shape[1] // factor * factor
    img = np.ascontiguousarray(pixels[:h, :w, :3])
    out = np.zeros((h, w, 3), np.float32)
    step = tile - 2 * overlap
    with torch.no_grad():
        for y0 in range(0, h, step):
            for x0 in range(0, w, step):
                ya, xa = max(0, y0 - overlap), max(0, x0 - overlap)
                yb, xb = min(h, y0 + step + overlap), min(w, x0 + step + overlap)
                ya, xa = ya // factor * factor, xa // factor * factor
                t = torch.from_numpy(np.ascontiguousarray(img[ya:yb, xa:xb])).permute(2, 0, 1)[None].float() / 255
                r = ae(t)[0].permute(1, 2, 0).numpy()
                ye, xe = min(h, y0 + step), min(w, x0 + step)
                out[y0:ye, x0:xe] = r[y0 - ya:ye - ya, x0 - xa:xe - xa]
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images of the same shape (cropped to the smaller if needed)."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    d = a[:h, :w].astype(np.float64) - b[:h, :w].astype(np.float64)
    mse = float((d ** 2).mean())
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def region(pixels: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``side`` x ``side`` native-resolution region (the whole image when smaller)."""
    h, w = pixels.shape[:2]
    hh, ww = min(side, h), min(side, w)
    y, x = int(rng.integers(0, h - hh + 1)), int(rng.integers(0, w - ww + 1))
    return np.ascontiguousarray(pixels[y:y + hh, x:x + ww])
