"""`GET /`: one self-contained page to try the model (inline CSS and script, no request outside the server). It
reads `/v1/model`, shows a control per field (a file picker with a preview for media), sends the row as multipart
form data and shows the answer as a person reads it: class probabilities as bars, the caption, numbers, the
attention fusion's weight per input."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def template() -> str:
    return (resources.files("plait.serving") / "page.html").read_text(encoding="utf-8")


def page_html(needs_token: bool) -> str:
    return template().replace("__NEEDS_TOKEN__", json.dumps(needs_token))
