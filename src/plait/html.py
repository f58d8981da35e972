"""Small HTML building blocks for the report and for the feature types' cell previews. Everything is escaped here,
and every image is a `data:` URI, so the page is one file that opens anywhere and makes no network request."""

from __future__ import annotations

import base64
import html
import io


def escape(value) -> str:
    return html.escape(str(value), quote=True)


def data_uri(content: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def image_uri(image, format: str = "JPEG", quality: int = 82) -> str:
    """A PIL image as a data URI (JPEG for photos and frames, PNG for plots and spectrograms)."""
    buffer = io.BytesIO()
    if format == "JPEG":
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format=format, optimize=True)
    return data_uri(buffer.getvalue(), f"image/{format.lower()}")


def img(uri: str, alt: str, css_class: str = "thumb") -> str:
    return f'<img class="{css_class}" src="{uri}" alt="{escape(alt)}">'


def missing(reason: str = "missing") -> str:
    """What a cell that has no value, or one that cannot be shown, looks like."""
    return f'<span class="missing">{escape(reason)}</span>'


def captioned(picture: str, caption: str) -> str:
    """A picture (HTML) with a line of text under it."""
    return f'<div class="preview">{picture}<div class="caption">{escape(caption)}</div></div>'
