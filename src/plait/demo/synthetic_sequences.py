"""Generated sequence data in the two layouts the sequence recipes read.

`make_signal_pickles`: a folder of pickles, one sample per file (as a bucket of pickled samples on S3 would hold),
each a dict of three variable-length signals and a score:
- `pulse` [length, 2]: a sine of random frequency whose amplitude is the first cue (channel 1 is noise);
- `drift` [length]: a noisy random walk whose slope is the second cue;
- `burst` [length, 3]: noise with one short burst in channel 1 whose height is the third cue.
`score` adds the three cues (plus a little noise), so every signal is needed and none suffices: a model that
sees one signal explains about a third of the variance.

`make_spectra`: a folder of `.npy` files, one per column: `spectrum.npy` [samples, length] holds 1-D spectra made of
five Gaussian peaks, and fifteen `peakK_position.npy`, `peakK_width.npy`, `peakK_height.npy` [samples] hold the
parameters each spectrum was drawn from, each uniform in [0, 1] (peak K lives in the K-th fifth of the spectrum).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

PEAKS = 5
PARAMETERS = [f"peak{k}_{name}" for k in range(1, PEAKS + 1) for name in ("position", "width", "height")]


def signal_sample(rng: np.random.Generator) -> dict:
    amplitude, slope, height = rng.uniform(0.5, 2.0), rng.uniform(-1.0, 1.0), rng.uniform(0.0, 2.0)
    length = int(rng.integers(40, 121))
    t = np.arange(length)
    pulse = np.stack([amplitude * np.sin(2 * np.pi * rng.uniform(0.03, 0.12) * t + rng.uniform(0, 2 * np.pi)),
                      rng.normal(0, 0.3, length)], axis=1)
    length = int(rng.integers(40, 121))
    drift = np.cumsum(slope * 0.05 + rng.normal(0, 0.05, length))
    length = int(rng.integers(40, 121))
    burst = rng.normal(0, 0.2, (length, 3))
    start = int(rng.integers(0, length - 8))
    burst[start:start + 8, 1] += height
    score = amplitude + slope + height + rng.normal(0, 0.1)
    return {"pulse": pulse.astype(np.float32), "drift": drift.astype(np.float32), "burst": burst.astype(np.float32),
            "score": float(round(score, 5))}


def make_signal_pickles(folder: Path, samples: int = 600, seed: int = 0) -> Path:
    """Write `folder/signals/sample-NNNNN.pkl`; return the folder of pickles."""
    rng = np.random.default_rng(seed)
    out = Path(folder) / "signals"
    out.mkdir(parents=True, exist_ok=True)
    for index in range(samples):
        with open(out / f"sample-{index:05d}.pkl", "wb") as handle:
            pickle.dump({"id": index, **signal_sample(rng)}, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return out


def spectra(parameters: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """[samples, 15] parameters in [0, 1] → [samples, length] spectra of five Gaussian peaks plus noise."""
    x = np.arange(length, dtype=np.float32)
    out = rng.normal(0, 0.02, (len(parameters), length)).astype(np.float32)
    window = length / PEAKS
    for k in range(PEAKS):
        position, width, height = (parameters[:, 3 * k + i, None] for i in range(3))
        centre = (k + 0.2 + 0.6 * position) * window
        sigma = window * (0.02 + 0.08 * width)
        out += (0.3 + height) * np.exp(-0.5 * ((x - centre) / sigma) ** 2)
    return out


def make_spectra(folder: Path, samples: int = 2000, length: int = 256, seed: int = 0) -> Path:
    """Write `folder/spectra/spectrum.npy` and one `.npy` per parameter; return the folder."""
    rng = np.random.default_rng(seed)
    out = Path(folder) / "spectra"
    out.mkdir(parents=True, exist_ok=True)
    parameters = rng.uniform(0, 1, (samples, len(PARAMETERS))).astype(np.float32)
    np.save(out / "spectrum.npy", spectra(parameters, length, rng))
    for index, name in enumerate(PARAMETERS):
        np.save(out / f"{name}.npy", parameters[:, index])
    return out
