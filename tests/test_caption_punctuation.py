"""Periods in caption targets: the end token, not a sentence-final ".", ends a caption, so a decoder does not learn to
stop at the "." of "0.05" or "st."; generated captions get their period back; a caption cut short is not ended."""

from __future__ import annotations

import json

import pytest
import torch

from plait.settings.caption import CaptionOutput
from plait.tasks.caption import IGNORED, CaptionTask

CAPTIONS = [
    "A european coin of 5 cents (0.05 euro).",
    "St. Paul's cathedral in London.",
    "A dog runs across the grass .",  # Flickr's spaced period
    "A bag of 3.5 kg of rice, e.g. for a family.",
    "1,000 people walk along the street.",
    "A coin of 0.10 euro on a table.",
    "Is this a dog?",
]
LENGTH = 40  # room for the longest of CAPTIONS in a small vocabulary


def make_task(captions=CAPTIONS) -> CaptionTask:
    task = CaptionTask(CaptionOutput(name="caption", column="caption", tokenizer={"vocab_size": 300, "max_length": LENGTH}))
    task.fit(captions)
    return task


@pytest.fixture(scope="module")
def task():
    return make_task()


def body(task, row: torch.Tensor) -> list[int]:
    """The ids between `<s>` and `</s>` of an encoded target (asserting it has both)."""
    ids = row.tolist()
    assert ids[0] == task.tokenizer.bos_id and task.tokenizer.eos_id in ids
    return ids[1:ids.index(task.tokenizer.eos_id)]


def test_the_final_period_is_left_to_the_end_token_and_inner_ones_stay(task):
    tokenizer, period = task.tokenizer, task.tokenizer.tokenizer.token_to_id(".")
    ids = body(task, task.encode("a coin of 0.05 euro."))
    assert ids == tokenizer.encode("a coin of 0.05 euro")
    assert ids[-len(tokenizer.encode("euro")):] == tokenizer.encode("euro")  # "euro" then </s>, no "." between
    assert period in ids  # the one inside 0.05
    assert body(task, task.encode("a coin of 0.05 euro .")) == ids  # Flickr's " ." likewise
    assert body(task, task.encode("st. paul's, e.g.")) == tokenizer.encode("st. paul's, e.g")
    assert body(task, task.encode("is this a dog?")) == tokenizer.encode("is this a dog?")
    assert body(task, task.encode("and then...")) == tokenizer.encode("and then...")  # an ellipsis is not a full stop
    # over the training captions the decoder is taught, "." is never what comes right before the end
    assert all(body(task, task.encode(caption))[-1] != period for caption in CAPTIONS)


def test_generated_captions_get_the_period_back_when_the_training_captions_had_one(task):
    assert task.final_period
    ids = [[task.tokenizer.bos_id, *task.tokenizer.encode(text), task.tokenizer.eos_id] for text in
           ["a coin of 0.05 euro", "is this a dog?", "st. paul's, e.g.", ""]]
    assert task.decode_ids(ids) == ["a coin of 0.05 euro.", "is this a dog?", "st. paul's, e.g.", ""]
    assert task.decode(ids) == {"caption_pred": task.decode_ids(ids)}
    assert task.decode_ids([body(task, task.encode(CAPTIONS[0]))]) == ["a european coin of 5 cents (0.05 euro)."]

    bare = make_task([caption.rstrip(" .") for caption in CAPTIONS[:4]] + CAPTIONS[4:])  # 2 of 7 end with "."
    assert not bare.final_period
    assert bare.decode_ids([bare.tokenizer.encode("a coin of 0.05 euro")]) == ["a coin of 0.05 euro"]


def test_the_period_choice_travels_with_the_state_and_old_states_load(task):
    state = json.loads(json.dumps(task.state_dict()))  # saved in preprocessing.json and checkpoints
    assert state["final_period"] is True
    restored = CaptionTask(task.spec)
    restored.load_state_dict(state)
    assert restored.final_period and restored.encode(CAPTIONS[0]).tolist() == task.encode(CAPTIONS[0]).tolist()
    old = {key: value for key, value in state.items() if key != "final_period"}  # a run from before the key
    restored.load_state_dict(old)
    assert not restored.final_period
    assert restored.decode_ids([task.tokenizer.encode("a dog runs")]) == ["a dog runs"]


def test_a_caption_cut_at_max_length_is_not_ended(task):
    tokenizer = task.tokenizer
    fits, cut = " ".join(["a"] * (LENGTH - 2)), " ".join(["a"] * (LENGTH - 1))  # " a" is one token
    assert len(tokenizer.encode(fits)) == LENGTH - 2  # as many as fit between <s> and </s>
    fitting = task.encode(fits + ".")
    assert fitting[-1] == tokenizer.eos_id and body(task, fitting) == tokenizer.encode(fits)
    long = task.encode(cut)
    assert tokenizer.eos_id not in long.tolist() and long[-1] == tokenizer.pad_id
    assert long[1:-1].tolist() == tokenizer.encode(cut)[:LENGTH - 2]

    batch = task.collate(task.stack([fitting, long, None]))
    labels = batch["labels"]
    assert batch["input"].shape == labels.shape == (3, LENGTH - 1)
    assert labels[0, -1] == tokenizer.eos_id  # the caption that fits learns to stop
    assert labels[1].tolist() == tokenizer.encode(cut)[:LENGTH - 2] + [IGNORED]  # the cut one does not
    assert (labels[2] == IGNORED).all()
    logits = torch.randn(3, LENGTH - 1, tokenizer.vocab_size, requires_grad=True)
    loss = task.loss(logits, batch)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    reduced = task.reduce(logits, batch)
    assert reduced["tokens"].tolist() == [LENGTH - 1, LENGTH - 2, 0]
