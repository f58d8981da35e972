"""Caption metrics against numbers from the COCO caption evaluation itself, plus their limiting cases."""

from __future__ import annotations

import json

import pytest

from plait.errors import PlaitError
from plait.evaluation.captions import bleu, caption_metrics, cider_d, normalise, write_samples

# five images, 1–5 references each, one hypothesis sharing nothing with its reference
HYPOTHESES = ["A dog runs on the grass.", "a man riding a wave on top of a surfboard", "two cats",
              "purple elephant xylophone", "A woman's red umbrella in the rain!"]
REFERENCES = [
    ["A dog is running across the grass.", "a brown dog runs on green grass", "The dog plays in a field."],
    ["A man riding a wave on top of a surfboard.", "A surfer rides a large wave in the ocean.", "a person surfing on a wave",
     "Man on a surfboard riding a wave", "A surfer catching a wave."],
    ["Two cats sleeping on a couch.", "two cats lie together on a sofa"],
    ["A plate of food with broccoli and rice."],
    ["A woman holds a red umbrella in the rain.", "a woman walking with an umbrella", "Person with umbrella on a rainy street",
     "a red umbrella"],
]
# pycocoevalcap 1.2 (`Bleu(4)`, `Cider()`) on the same captions, tokenised by `normalise` and joined with spaces
EXPECTED = {"bleu1": 0.6215249330317185, "bleu2": 0.5938876372249561, "bleu3": 0.5545076625182361,
            "bleu4": 0.5309585499856755, "cider": 1.8832063235900556}
# also from pycocoevalcap 1.2: an empty hypothesis, and BLEU's smoothing epsilon where no 4-gram matches
EMPTY_HYPOTHESIS = (["", "a cat sits on a mat", "dog"], [["a dog runs", "dog running"], ["a cat on a mat"], ["the dog", "a dog"]])
EXPECTED_EMPTY = {"bleu1": 0.6441233938804958, "bleu2": 0.538912295799877, "bleu3": 0.37928355997512203,
                  "bleu4": 6.080253211921888e-05, "cider": 2.053481862315635}


def test_normalise_stands_in_for_the_ptb_tokenizer():
    assert normalise("A Man's black-and-white dog, running!  (Fast.)") == ["a", "man's", "black-and-white", "dog", "running", "fast"]
    assert normalise("It’s 3.5 metres - tall...") == ["it's", "3.5", "metres", "tall"]
    assert normalise("Café in São Paulo") == ["café", "in", "são", "paulo"]


@pytest.mark.parametrize("case, expected", [((HYPOTHESES, REFERENCES), EXPECTED), (EMPTY_HYPOTHESIS, EXPECTED_EMPTY)])
def test_matches_pycocoevalcap(case, expected):
    assert caption_metrics(*case) == pytest.approx(expected, abs=1e-9)


def test_limits():
    references = [["a dog runs on the grass"], ["a cat sits on a red mat"], ["two men play tennis on a court"]]
    perfect = caption_metrics([refs[0] for refs in references], references)
    assert perfect["bleu4"] == pytest.approx(1.0) and perfect["cider"] == pytest.approx(10.0)

    disjoint = caption_metrics(["purple elephant xylophone"] * 3, references)
    assert all(value == pytest.approx(0.0, abs=1e-9) for value in disjoint.values())
    assert caption_metrics([], []) == {}
    assert cider_d(["a dog on the grass"], [["a dog runs on the grass"]]) == 0.0  # one image: every idf is 0


def test_every_reference_counts():
    hypotheses = ["a brown dog runs on the beach", "a cat sleeps on a sofa"]
    one = [["a brown dog runs on the beach"], ["a cat sleeps on a red sofa"]]
    more = [["a brown dog runs on the beach"], ["a cat sleeps on a red sofa", "a cat sleeps on a sofa"]]
    # the second image's exact match is only in its second reference
    assert bleu(hypotheses, one)["bleu4"] < 0.9 and bleu(hypotheses, more)["bleu4"] == pytest.approx(1.0)
    assert cider_d(hypotheses, more) > cider_d(hypotheses, one)
    # CIDEr averages over references: a far-off one lowers the score
    assert cider_d(hypotheses, [more[0] + ["a dog"], more[1]]) < cider_d(hypotheses, more)
    with pytest.raises(PlaitError, match="must pair up"):
        bleu(hypotheses, one[:1])


def test_write_samples(tmp_path):
    path = tmp_path / "evaluation" / "test_caption_samples.json"
    write_samples(path, ["1.jpg", "2.jpg", "3.jpg"], ["a dog", "a cat", "a bird"], [["a dog"], ["a cat", "cat"], ["bird"]], limit=2)
    assert json.loads(path.read_text()) == [{"image": "1.jpg", "caption": "a dog", "references": ["a dog"]},
                                            {"image": "2.jpg", "caption": "a cat", "references": ["a cat", "cat"]}]
    assert [p.name for p in path.parent.iterdir()] == [path.name]
