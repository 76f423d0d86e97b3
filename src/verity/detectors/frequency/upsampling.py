"""Up-sampling spectrum detector (periodic peaks and azimuthal spectrum)."""

from __future__ import annotations

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample


@register_detector
class Upsampling(Detector):
    """Periodic spectral peaks left by 2x up-sampling, as in GAN and diffusion decoders.

    Method (:mod:`verity.ops.spectrum`): the magnitudes of the first, second and third pixel
    differences are averaged along every row (and column) and Fourier-transformed; an image
    up-sampled by 2 shows a peak at 1/2 of the sampling frequency on both axes (Gallagher 2005;
    Durall et al. 2020; Frank et al. 2020). JPEG's 8x8 grid also makes peaks at multiples of 1/8,
    so the 1/2 peak only counts by how much it exceeds the JPEG-only peaks at 1/8 and 3/8. The
    azimuthally averaged power spectrum of the most textured tiles is reported in ``details``
    (high-frequency slope and ratio) for fusion training; it does not set the score.

    Score: 0.5 to 0.9 when a strong 1/2 peak stands above the JPEG level, else 0.47.
    Weight 0.3: nearest, bilinear and bicubic 2x up-sampling are found even after JPEG q90, but on
    Stable Diffusion 1.x images versus camera photos, both centre-cropped and re-encoded alike, the
    score does not separate them (ROC AUC 0.46, docs/classical.md), and about 15 % of camera
    photos show such a peak (in-camera resampling or an earlier JPEG grid).
    """

    name = "upsampling"
    kind = "frequency"
    labels = ("ai_generated",)
    weight = 0.3

    def run(self, sample: Sample) -> Finding:
        import cv2

        from verity.ops.spectrum import spectrum_features, upsampling_score

        h, w = sample.height, sample.width
        if min(h, w) < 128:
            return self.abstain(f"image is too small for spectral analysis ({w}x{h}, needs 128 px)")
        gray = cv2.cvtColor(sample.pixels, cv2.COLOR_RGB2GRAY)
        tile = 256 if min(h, w) >= 256 else 128
        f = spectrum_features(gray, tile=tile)
        if f is None:  # pragma: no cover - guarded by the size check
            return self.abstain("image is smaller than one analysis tile")
        score = upsampling_score(f)
        details = {
            "peak_half": round(f.up2, 2),
            "peak_quarter": round(f.up4, 2),
            "peak_jpeg_odd": round(f.jpeg_odd, 2),
            "excess_half_log10": round(f.excess2, 3),
            "excess_quarter_log10": round(f.excess4, 3),
            "hf_slope": round(f.hf_slope, 3),
            "hf_ratio": round(f.hf_ratio, 3),
            "azimuthal_log10_power": [round(float(v), 3) for v in f.azimuthal],
            "tiles": f.tiles,
        }
        if score > 0.5:
            also = ""
            if f.excess4 > 0.2:
                also = f" and at 1/4 ({f.up4:.0f} times)"
            ev = (
                f"Periodic peaks at 1/2 of the sampling frequency on both axes, {f.up2:.0f} times the "
                f"background{also}: the pattern 2x up-sampling leaves (JPEG's own grid peaks, at 1/8 "
                f"and 3/8, reach only {f.jpeg_odd:.0f} times)."
            )
        else:
            ev = (
                f"No up-sampling peak above the JPEG grid level (1/2 of the sampling frequency: "
                f"{f.up2:.1f} times the background; 1/8 and 3/8: {f.jpeg_odd:.1f} times)."
            )
        return self.finding(score, [ev], details=details)
