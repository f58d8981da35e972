"""The `text` feature (word, BPE and Hugging Face tokenizers) and its encoders (bag, transformer, hf)."""

from __future__ import annotations

import json

import pytest
import torch

from plait.config import ConfigError, validate
from plait.errors import PlaitError
from plait.registry import ENCODERS, FEATURES

TEXTS = [
    "The cat sat on the mat.",
    "A dog barked at the cat!",
    "Café crème, s'il vous plaît.",
    "日本語 のテキスト",
    "the the the cat",
]


def make_config(**text_input):
    """A whole config with one text input, validated the way `plait train` does."""
    text_input = {"name": "note", "type": "text", "column": "text", **text_input}
    raw = {
        "data": {"table": "table.csv"},
        "inputs": [text_input],
        "outputs": [{"name": "label", "type": "category", "column": "label"}],
    }
    return validate(raw)


def make_feature(texts=TEXTS, **text_input):
    feature = FEATURES["text"](make_config(**text_input).inputs[0])
    feature.fit(texts)
    return feature


def reloaded(feature):
    """A fresh feature restored from a JSON round trip of what `feature` learned."""
    fresh = FEATURES["text"](feature.spec)
    fresh.load_state_dict(json.loads(json.dumps(feature.state_dict())))
    return fresh


def make_encoder(feature):
    """As the model builds it: constructed, then frozen when the config says so."""
    encoder = ENCODERS[feature.spec.encoder.name].build(feature.spec.encoder, feature)
    if feature.spec.encoder.freeze:
        encoder.freeze()
    return encoder


@pytest.fixture(scope="module")
def minilm():
    """The packaged all-MiniLM-L6-v2, frozen: its tokenizer feature and its encoder, loaded once."""
    feature = make_feature(encoder={"name": "hf", "path": "minilm", "freeze": True})
    return feature, make_encoder(feature)


def test_word_vocabulary_comes_from_the_training_texts_only():
    feature = make_feature()
    assert feature.kind == "word"
    assert feature.vocabulary[:2] == ["<pad>", "<unk>"]
    assert feature.vocabulary[2] == "the"  # most frequent first, lowercased
    assert {"café", "crème", "日本語", "."} <= set(feature.vocabulary)
    assert "giraffe" not in feature.vocabulary
    ids = feature.encode("The giraffe sat").tolist()
    assert ids == [feature.index["the"], feature.unk_id, feature.index["sat"]]
    assert feature.encode("!!!???").tolist() == [feature.index["!"], feature.index["!"], feature.index["!"], 1, 1, 1]


def test_word_vocab_size_and_min_count_limit_the_vocabulary():
    feature = make_feature(vocab_size=2)
    assert feature.vocabulary == ["<pad>", "<unk>", "the", "cat"]
    assert feature.vocab_size == 4
    rare = make_feature(min_count=2)
    assert set(rare.vocabulary) == {"<pad>", "<unk>", "the", "cat", "."}


def test_encode_truncates_handles_numbers_and_empty_text():
    feature = make_feature(max_length=3)
    assert feature.encode("the cat sat on the mat").tolist() == [feature.index[w] for w in ("the", "cat", "sat")]
    assert feature.encode(42).dtype == torch.long
    assert feature.encode("   \t ").tolist() == [feature.unk_id]  # nothing left after tokenising


def test_word_fit_is_independent_of_row_order():
    assert make_feature(TEXTS).vocabulary == make_feature(list(reversed(TEXTS))).vocabulary


@pytest.mark.parametrize("tokenizer", ["word", "bpe"])
def test_state_dict_round_trip_gives_identical_ids(tokenizer):
    feature = make_feature(tokenizer=tokenizer, vocab_size=300)
    fresh = reloaded(feature)
    for text in TEXTS + ["An unseen sentence, with ünïcödé and 🙂.", 3.5]:
        assert torch.equal(feature.encode(text), fresh.encode(text))
    assert (fresh.vocab_size, fresh.pad_id) == (feature.vocab_size, feature.pad_id)


def test_bpe_learns_subwords_and_never_needs_unk():
    feature = make_feature(tokenizer="bpe", vocab_size=300)
    assert feature.vocab_size <= 300 and feature.pad_id == 0 and feature.unk_id == 1
    ids = feature.encode("the cat 🙂 Ωmega").tolist()
    assert feature.unk_id not in ids
    assert len(feature.encode("the cat").tolist()) < len("the cat")  # merges were learned
    again = make_feature(tokenizer="bpe", vocab_size=300)
    assert again.state_dict() == feature.state_dict()  # training is deterministic


def test_stack_pads_to_the_longest_row_and_marks_missing_rows():
    feature = make_feature()
    rows = [feature.encode("the cat"), None, feature.encode("a dog barked at the cat")]
    batch = feature.stack(rows)
    assert batch["ids"].shape == batch["attention_mask"].shape == (3, 6)
    assert batch["present"].tolist() == [True, False, True]
    assert batch["attention_mask"].sum(1).tolist() == [2, 0, 6]
    assert batch["ids"][0, 2:].eq(feature.pad_id).all() and batch["ids"][1].eq(feature.pad_id).all()
    only_missing = feature.stack([None, None])
    assert only_missing["ids"].shape == (2, 1) and not only_missing["attention_mask"].any()


@pytest.mark.parametrize("name", ["bag", "transformer"])
def test_scratch_encoders_shapes_no_nan_and_gradients(name):
    torch.manual_seed(0)
    feature = make_feature(encoder={"name": name, "dim": 32}, max_length=8)
    encoder = make_encoder(feature)
    batch = feature.stack([feature.encode("the cat sat on the mat and the dog"), None, feature.encode("cat")])
    out = encoder(batch)
    assert out.shape == (3, 32) and encoder.out_dim == 32
    assert torch.isfinite(out).all()
    assert out[1].eq(0).all()  # a missing row is a zero vector
    out[[0, 2]].pow(2).sum().backward()
    assert encoder.embedding.weight.grad is not None and encoder.embedding.weight.grad.abs().sum() > 0
    encoder.eval()
    assert torch.isfinite(encoder(batch)).all()


def test_transformer_config_checks_heads_divide_dim():
    with pytest.raises(ConfigError, match="heads"):
        make_config(encoder={"name": "transformer", "dim": 30, "heads": 4})


def test_hf_minilm_embeds_paraphrases_closer_than_unrelated_text(minilm):
    feature, encoder = minilm
    assert feature.kind == "hf" and encoder.out_dim == 384
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    batch = feature.stack([feature.encode(t) for t in texts] + [None])
    with torch.no_grad():
        out = encoder(batch)
    assert out.shape == (4, 384) and torch.isfinite(out).all() and out[3].eq(0).all()
    cos = torch.nn.functional.cosine_similarity
    assert cos(out[0], out[1], dim=0) > cos(out[0], out[2], dim=0) + 0.2


def test_hf_tokenizer_round_trip_and_truncation(minilm):
    feature, _ = minilm
    assert feature.encode("Ünïcödé text, naïve café").dtype == torch.long
    assert len(feature.encode("word " * 500)) == feature.spec.max_length
    state = json.loads(json.dumps(feature.state_dict()))
    assert state["path"] == "minilm"  # an alias stays portable
    fresh = reloaded(feature)
    for text in TEXTS:
        assert torch.equal(feature.encode(text), fresh.encode(text))


def test_frozen_hf_stays_frozen_and_in_eval_mode(minilm):
    _, encoder = minilm
    parent = torch.nn.Sequential(encoder)
    parent.train()
    assert parent.training and not encoder.model.training
    assert not any(module.training for module in encoder.model.modules())
    assert not any(p.requires_grad for p in encoder.parameters())


def test_missing_local_model_says_plait_never_downloads():
    feature = FEATURES["text"](make_config(encoder={"name": "hf", "path": "/nonexistent/model"}).inputs[0])
    with pytest.raises(PlaitError, match="never downloads"):
        feature.fit(TEXTS)
    with pytest.raises(PlaitError, match="never downloads"):
        ENCODERS["hf"](feature.spec.encoder, feature)


def test_hf_encoder_refuses_a_word_tokenizer():
    feature = make_feature(tokenizer="word", encoder={"name": "hf", "path": "minilm"})
    with pytest.raises(PlaitError, match="tokenizer"):
        make_encoder(feature)


def test_config_validation_of_a_text_input():
    config = make_config(tokenizer="bpe", max_length=16, encoder={"name": "transformer", "layers": 1})
    text = config.inputs[0]
    assert (text.type, text.tokenizer, text.max_length, text.vocab_size) == ("text", "bpe", 16, 10000)
    assert text.encoder.name == "transformer" and text.encoder.layers == 1 and text.encoder.heads == 4
    assert make_config().inputs[0].encoder.name == "bag"  # the default encoder
    with pytest.raises(ConfigError) as error:
        make_config(encoder={"name": "transformer", "layrs": 1})
    assert "inputs.note.encoder.layrs: unknown key; did you mean layers?" in error.value.lines
    with pytest.raises(ConfigError) as error:
        make_config(tokeniser="bpe")
    assert "inputs.note.tokeniser: unknown key; did you mean tokenizer?" in error.value.lines
    with pytest.raises(ConfigError) as error:
        make_config(encoder={"name": "hf"})
    assert "inputs.note.encoder.path: required key is missing" in error.value.lines


def test_hf_pooling_pooler_is_the_models_pooled_output(minilm):
    feature, _ = minilm
    pooled = make_feature(encoder={"name": "hf", "path": "minilm", "freeze": True, "pooling": "pooler"})
    encoder = make_encoder(pooled)
    batch = pooled.stack([pooled.encode("A man is playing a guitar."), None])
    with torch.no_grad():
        out = encoder(batch)
        expected = encoder.model(input_ids=batch["ids"][:1], attention_mask=batch["attention_mask"][:1].long()).pooler_output
    assert torch.allclose(out[:1], expected, atol=1e-5) and out[1].eq(0).all()  # a missing row stays zeros
    assert out[0].abs().max() <= 1.0  # through BERT's tanh, unlike the first token's hidden state
    cls = make_encoder(make_feature(encoder={"name": "hf", "path": "minilm", "freeze": True, "pooling": "cls"}))
    with torch.no_grad():
        assert not torch.allclose(cls(batch)[0], out[0])
