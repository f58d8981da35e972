"""Small previews of input cells for the report's sample gallery: each cell, whatever its modality, as a bit of
self-contained HTML. Each feature type draws its own cells (`FeatureType.preview`: a thumbnail, a poster frame, a
spectrogram, a sparkline, the text or the value); this module adds what every cell shares.

A preview never raises: an empty cell gives `missing("missing")` and a cell that cannot be read gives
`missing("unreadable: <reason>")`, so one broken file never stops a report.
"""

from __future__ import annotations

import pandas as pd

from plait.data.columns import is_missing
from plait.data.features.image import short_reason as image_reason
from plait.html import missing


def preview(feature, value, size: int = 160) -> str:
    """HTML for one input cell of `feature` (a fitted or unfitted feature type), at most `size` pixels a side."""
    if is_missing(value) or value is pd.NA:
        return missing("missing")
    try:
        return feature.preview(value, size)
    except Exception as error:  # any failure (missing file, corrupt data, odd cell) is shown, never raised
        return missing(f"unreadable: {short_reason(error)}")


def preview_row(features: dict, row: pd.Series, size: int = 160) -> dict[str, str]:
    """Input name → HTML preview of that input's cell in `row` (a row of the data table)."""
    return {name: preview(feature, row.get(feature.spec.column), size) for name, feature in features.items()}


def short_reason(error: Exception) -> str:
    """A few words on why a cell could not be read. Project errors read 'context: reason', where the context
    names the file (already shown in the gallery); only the reason is kept."""
    text = image_reason(error)  # also turns FileNotFoundError, "not an image file" etc. into a few words
    reason = text.rsplit(": ", 1)[-1].strip() or type(error).__name__
    return reason if len(reason) <= 80 else reason[:79].rstrip() + "…"
