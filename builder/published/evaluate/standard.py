"""The paper's fidelity measures computed the standard way, through maintained libraries.

- **FID and KID**: torchmetrics' `FrechetInceptionDistance`, whose feature extractor is torch-fidelity's
  Inception-v3 (`pt_inception-2015-12-05`, the TensorFlow FID network ported to PyTorch): 2048-d pool
  features of uint8 RGB images resized to 299 px with TensorFlow-1.x bilinear resizing (`antialias=False`,
  the reference FID pipeline). The statistics themselves are torchmetrics' (`FrechetInceptionDistance`,
  `KernelInceptionDistance`), fed the cached features through a pass-through module, so features are
  extracted once and the bootstrap resamples them.
- **LPIPS**: torchmetrics' `LearnedPerceptualImagePatchSimilarity` (AlexNet, the LPIPS v0.1 linear
  layers shipped with torchmetrics; ImageNet AlexNet weights from torchvision).

Weights come from the library's own download, or from a local file (`--inception-weights`,
`--lpips-weights`) whose sha256 must match the standard file's published prefix: a figure is never
computed with other weights under the standard name. Where a measure cannot run, the loader returns the
reason instead, and the card prints "not computed" with it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from builder.core.errors import ConfigError
from builder.core.schema import canonical_json, digest
from builder.core.store import atomic_write

INCEPTION = "Inception-v3 (torch-fidelity pt_inception-2015-12-05, 2048-d pool, via torchmetrics)"
# sha256 of torch-fidelity's weights-inception-2015-12-05-6726825d.pth (the name carries its first 8 digits)
INCEPTION_SHA256_PREFIX = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet (the LPIPS "alex" backbone)
ALEXNET_SHA256_PREFIX = "7be5be79"  # torchvision names its files by the sha256's first 8 digits
LPIPS = "LPIPS v0.1 (AlexNet, torchmetrics)"
LPIPS_SIZE = 256  # both images of an LPIPS pair are resized to this square (the synthetic images' size)


@dataclasses.dataclass
class Extractor:
    """A feature network for the FID/KID code path: uint8 RGB (N, 3, H, W) -> (N, d) features."""

    name: str       # what the card calls it (a test network must say it is not Inception)
    ident: dict     # keys the feature cache (network + weights digest)
    module: Any


def check_weights(path: str | None, prefix: str, flag: str, what: str) -> str | None:
    """sha256 of a weights file given on the command line, refused unless it is the standard file."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{flag} {path}: no such file; pass the {what} weights file or leave the flag out")
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    if not sha.startswith(prefix):
        raise ConfigError(f"{flag} {path}: sha256 {sha[:16]}... is not the standard {what} file "
                          f"(sha256 {prefix[:16]}...); download the library's own weights file")
    return sha


def load_inception(weights: str | None, device: str) -> Extractor | str:
    """torch-fidelity's Inception-v3 inside torchmetrics' FID, or the reason it cannot run here."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        import torch_fidelity  # noqa: F401  (torchmetrics only checks that it is installed)
    except ImportError as e:
        return (f"torch-fidelity (the Inception-v3 network torchmetrics' FID uses) cannot be imported here "
                f"({e}); install it with `pip install torch-fidelity` (it needs torchvision)")
    check_weights(weights, INCEPTION_SHA256_PREFIX, "--inception-weights", "Inception-v3 FID")
    try:
        metric = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=weights, antialias=False)
    except (OSError, RuntimeError, ValueError) as e:  # URLError is an OSError
        return (f"the Inception-v3 weights could not be downloaded ({type(e).__name__}: {str(e)[:120]}) and no "
                "--inception-weights file was given")
    return Extractor(INCEPTION, {"net": "inception-v3-compat", "weights_sha256": INCEPTION_SHA256_PREFIX,
                                 "resize": "tf1-bilinear-299"}, metric.inception.to(device))


def load_lpips(weights: str | None, device: str):
    """(torchmetrics' LPIPS module, identity) or the reason it cannot run here."""
    try:
        import torchvision  # noqa: F401
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity
    except ImportError as e:
        return (f"LPIPS needs torchvision's AlexNet (torchmetrics' LearnedPerceptualImagePatchSimilarity), and "
                f"it cannot be imported here ({e}); install torchvision")
    sha = check_weights(weights, ALEXNET_SHA256_PREFIX, "--lpips-weights", "AlexNet (LPIPS)")
    import tempfile

    import torch

    old = torch.hub.get_dir()
    with tempfile.TemporaryDirectory() as hub:
        if weights:  # torchvision looks for its checkpoint by file name in the hub folder before downloading
            (Path(hub) / "checkpoints").mkdir()
            (Path(hub) / "checkpoints" / ALEXNET_FILE).symlink_to(Path(weights).resolve())
            torch.hub.set_dir(hub)
        try:
            net = LearnedPerceptualImagePatchSimilarity(net_type="alex", reduction="none", normalize=True)
        except (OSError, RuntimeError, ValueError) as e:
            return (f"the AlexNet weights LPIPS needs could not be downloaded ({type(e).__name__}: {str(e)[:120]}) "
                    "and no --lpips-weights file was given")
        finally:
            torch.hub.set_dir(old)
    return net.to(device).eval(), {"net": "lpips-alex-v0.1", "weights_sha256": sha or ALEXNET_FILE}


# -- features and the torchmetrics statistics on them ----------------------------------------------
def standard_features(items, extractor: Extractor, cache: Path, device: str):
    """The extractor's features of each item (uint8 RGB at the image's own size; cached by image digests,
    written a batch at a time; a large set comes back as rows of its cache file, see featurefile)."""
    from builder.published.evaluate import featurefile

    key = digest(canonical_json([extractor.ident, [i.data_digest() for i in items]]).encode())
    path = cache / f"std-features-{key}.npy"
    if not path.is_file():
        featurefile.write(path, _standard_batches(items, extractor, device), len(items))
    return featurefile.load(path)


def _standard_batches(items, extractor: Extractor, device: str):
    import torch

    from builder.core.progress import progress
    from builder.published.evaluate.images import decode_images

    for s in progress(range(0, len(items), 32), desc="standard features", total=-(-len(items) // 32), unit="batch"):
        arrays = decode_images(items[s:s + 32])
        shapes = sorted({a.shape for a in arrays})
        rows: dict[int, np.ndarray] = {}
        for shape in shapes:  # one batch per image size: the network resizes, never the caller
            idx = [n for n, a in enumerate(arrays) if a.shape == shape]
            x = torch.from_numpy(np.stack([arrays[n] for n in idx])).permute(0, 3, 1, 2).contiguous().to(device)
            with torch.inference_mode():
                f = extractor.module(x).double().cpu().numpy().reshape(len(idx), -1)
            rows.update(zip(idx, f))
        yield np.stack([rows[n] for n in range(len(arrays))])


def _given(d: int):
    import torch

    class Given(torch.nn.Module):
        """Hands torchmetrics features computed earlier (so they are extracted once and resampled)."""

        num_features = d

        def forward(self, x):
            return x

    return Given()


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """torchmetrics' FID statistic between two feature sets (NaN below 2 rows a side)."""
    import warnings

    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    if len(a) < 2 or len(b) < 2:
        return float("nan")
    m = FrechetInceptionDistance(feature=_given(a.shape[1]))
    for x, real in ((a, True), (b, False)):
        if hasattr(x, "sums"):  # rows on disk: the metric's own running sums, filled a chunk at a time
            n, total, outer = x.sums()
            side = "real" if real else "fake"
            getattr(m, f"{side}_features_sum").add_(torch.from_numpy(total))
            getattr(m, f"{side}_features_cov_sum").add_(torch.from_numpy(outer))
            setattr(m, f"{side}_features_num_samples", getattr(m, f"{side}_features_num_samples") + n)
            m.orig_dtype = torch.float64
        else:
            m.update(torch.from_numpy(np.asarray(x, np.float64)), real=real)
    with warnings.catch_warnings():  # "compute before update": the sums were filled directly
        warnings.simplefilter("ignore", UserWarning)
        return float(m.compute())


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 10, subset_size: int = 100, seed: int = 0) -> float:
    """torchmetrics' KID (mean over subsets of size min(subset_size, n_a, n_b); seeded subsets)."""
    import warnings

    import torch
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(a), len(b))
    if size < 2:
        return float("nan")
    with warnings.catch_warnings():  # "will save all extracted features": they are in memory already
        warnings.simplefilter("ignore", UserWarning)
        m = KernelInceptionDistance(feature=_given(a.shape[1]), subsets=subsets, subset_size=size)
    if hasattr(a, "rows") or hasattr(b, "rows"):
        return _kid_drawn(m, a, b, seed)
    m.update(torch.from_numpy(np.asarray(a, np.float64)), real=True)
    m.update(torch.from_numpy(np.asarray(b, np.float64)), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, _ = m.compute()
    return float(mean)


def _kid_drawn(m, a, b, seed: int) -> float:
    """torchmetrics' KID compute with rows on disk: the same seeded draws (torch.randperm per subset, real
    then fake) and its polynomial MMD, reading only the rows each subset draws."""
    import torch
    from torchmetrics.image.kid import poly_mmd

    def drawn(x, n):
        rows = np.asarray(x[torch.randperm(n)[:m.subset_size].numpy()], np.float64)
        return torch.from_numpy(rows)

    scores = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(m.subsets):
            f_real = drawn(a, len(a))
            f_fake = drawn(b, len(b))
            scores.append(poly_mmd(f_real, f_fake, m.degree, m.gamma, m.coef))
    return float(torch.stack(scores).mean())


def lpips_values(synth, real, net, ident: dict, cache: Path, device: str, seed: int) -> np.ndarray:
    """LPIPS between each synthetic image and one real photo of its tone (seeded draw), both at
    LPIPS_SIZE px; cached by the pairs' digests. NaN where no real photo has that tone."""
    pairs = pair_with_real(synth, real, seed)
    key = digest(canonical_json([ident, LPIPS_SIZE, [[s.data_digest(), r.data_digest() if r else None]
                                                     for s, r in pairs]]).encode())
    path = cache / f"lpips-{key}.npy"
    if path.is_file():
        return np.load(path)
    import torch

    from builder.core.progress import progress

    out = np.full(len(pairs), np.nan)
    todo = [n for n, (_, r) in enumerate(pairs) if r is not None]
    for s in progress(range(0, len(todo), 32), desc="LPIPS", total=-(-len(todo) // 32), unit="batch"):
        idx = todo[s:s + 32]
        a = _square([pairs[n][0] for n in idx]).to(device)
        b = _square([pairs[n][1] for n in idx]).to(device)
        with torch.inference_mode():
            out[idx] = net(a, b).double().cpu().numpy().reshape(-1)
    buf = io.BytesIO()
    np.save(buf, out)
    atomic_write(path, buf.getvalue())
    return out


def pair_with_real(synth, real, seed: int) -> list:
    """(synthetic, a real photo of the same tone drawn with a seeded generator, or None)."""
    rng = np.random.default_rng(seed)
    by_tone = {t: [r for r in real if r.tone == t] for t in {r.tone for r in real}}
    out = []
    for s in synth:
        pool = by_tone.get(s.tone, [])
        out.append((s, pool[int(rng.integers(len(pool)))] if pool else None))
    return out


def _square(items):
    """Float RGB in [0, 1], (N, 3, LPIPS_SIZE, LPIPS_SIZE) (bilinear resize with PIL)."""
    import torch
    from PIL import Image

    arrays = [np.asarray(Image.open(io.BytesIO(i.data)).convert("RGB").resize((LPIPS_SIZE, LPIPS_SIZE),
                                                                             Image.Resampling.BILINEAR))
              for i in items]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
