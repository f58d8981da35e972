"""The grounding benchmark (src/plait/demo/synthetic_grounding.py): many object kinds, one to four photos each,
captions that can only be written by looking; and the captioner beating the caption of the nearest training image."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plait.demo.runner import run_demo
from plait.demo.synthetic_grounding import COLOURS, PLACES, attributes, caption, kinds, make_grounding


def table_of(results: Path) -> pd.DataFrame:
    return pd.read_csv(results, sep="|", skipinitialspace=True)


def test_every_kind_has_one_to_three_photos_with_one_caption_that_names_what_it_shows(tmp_path):
    results = make_grounding(tmp_path, images_per_kind=(1, 3))
    table = table_of(results)
    assert table["image_name"].is_unique and (table["comment_number"] == 0).all()  # one caption per image
    said = [attributes(text) for text in table["comment"]]
    assert all(said)  # every caption in the documented form
    per_kind = Counter((a["shape"], a["surface"], a["mark"]) for a in said)
    assert len(per_kind) == len(kinds()) == 84 and set(per_kind.values()) <= {1, 2, 3}
    assert {a["colour"] for a in said} == set(COLOURS) and {a["place"] for a in said} == set(PLACES)
    again = make_grounding(tmp_path / "again", images_per_kind=(1, 3))
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(results.read_bytes()).digest()


def test_the_objects_stand_where_the_caption_says_and_transparent_photos_hide_other_colours(tmp_path):
    results = make_grounding(tmp_path, images_per_kind=(1, 1))
    folder = results.parent / "flickr30k_images"
    transparent = 0
    for name, text in zip(table_of(results)["image_name"], table_of(results)["comment"]):
        image = Image.open(folder / name)
        pixels = np.asarray(image.convert("RGB")).astype(int)
        if image.mode == "RGBA":
            alpha = np.asarray(image)[..., 3]
            transparent += 1
            assert (alpha == 0).mean() > 0.5 and pixels[alpha == 0].std() > 40  # noise under the transparent pixels
            drawn = alpha > 0
        else:
            drawn = pixels.min(axis=2) < 200  # the background is light
        rows, columns = np.nonzero(drawn)
        half = pixels.shape[0] / 2
        place = attributes(text)["place"]
        inside = {"left": columns < half, "right": columns >= half, "top": rows < half, "bottom": rows >= half}[place]
        assert inside.mean() > 0.97, (name, text)
    assert transparent > 10


def test_captions_round_trip_through_their_attributes():
    for kind in kinds():
        for count, place in ((1, "left"), (2, "top"), (3, "bottom")):
            said = attributes(caption(kind, "red", count, place))
            assert said == {"count": {1: "a", 2: "two", 3: "three"}[count], "colour": "red", "surface": kind.surface,
                            "shape": kind.shape, "mark": kind.mark, "place": place}
    assert attributes("a dog runs on the grass.") is None


@pytest.mark.slow
def test_the_captioner_beats_the_nearest_training_images_caption_which_beats_the_untrained_model(tmp_path):
    results = run_demo(tmp_path, name="grounding")
    cider = {name: values["caption.cider"] for name, values in results.items()}
    nearest = max(cider["baseline"], cider["nearest_features"])  # by pixels, by the trained encoder
    print(f"test CIDEr-D: trained {cider['trained']:.3f}, nearest training image {nearest:.3f}, untrained {cider['untrained']:.3f}")
    assert cider["trained"] > 1.5 * nearest and nearest > cider["untrained"]
    perplexity = {name: results[name]["caption.perplexity"] for name in ("trained", "shuffled_inputs")}
    assert perplexity["shuffled_inputs"] > 2 * perplexity["trained"]  # given another image it is lost: it reads them
