"""The captions' byte-level BPE tokenizer: training, special ids, decoding, and every way it is saved and loaded."""

from __future__ import annotations

import json
import shutil

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from plait.errors import PlaitError
from plait.tasks.tokenizer import CaptionTokenizer

SUBJECTS = ["A dog", "The cat", "A young man", "Two women", "A child", "An old horse"]
ACTIONS = ["runs across", "sits on", "plays in", "walks along"]
PLACES = ["the green grass.", "a sandy beach.", "the busy street.", "a snowy field."]
CAPTIONS = [f"{s} {a} {p}" for s in SUBJECTS for a in ACTIONS for p in PLACES][::2]  # 48 captions
TEXTS = ["  A Dog runs on the Beach.  ", "Café crème, naïve façade 🐶🌊", "tabs\tand  double  spaces", "a caption with </s> in it"]


@pytest.fixture(scope="module")
def tokenizer():
    return CaptionTokenizer.train(CAPTIONS, vocab_size=320, min_frequency=2)


def ids_of(tokenizer):
    return [tokenizer.encode(text) for text in [*TEXTS, *CAPTIONS[:5]]]


def test_training_puts_the_specials_first_and_is_deterministic(tokenizer):
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2)
    assert 259 < tokenizer.vocab_size <= 320 and tokenizer.lowercase
    again = CaptionTokenizer.train(CAPTIONS, vocab_size=320, min_frequency=2)
    assert again.tokenizer.to_str() == tokenizer.tokenizer.to_str()
    with pytest.raises(PlaitError, match="no non-empty"):
        CaptionTokenizer.train(["", "  "])


def test_round_trip_and_decode(tokenizer):
    for text in TEXTS:
        ids = tokenizer.encode(text)
        assert not {0, 1, 2} & set(ids)  # no specials, even for a caption that spells one out
        assert tokenizer.decode(ids) == text.strip().lower()
    ids = tokenizer.encode("a dog runs")
    assert tokenizer.decode([1, *ids, 2, *tokenizer.encode("the cat"), 0]) == "a dog runs"  # stops at </s>
    assert tokenizer.decode([1, *ids, 0, 0]) == "a dog runs"
    assert tokenizer.encode("A DOG") == tokenizer.encode("a dog")

    cased = CaptionTokenizer.train(CAPTIONS, vocab_size=320, lowercase=False)
    assert not cased.lowercase and cased.decode(cased.encode(" Café 🐶 Dog ")) == "Café 🐶 Dog"


def test_numbers_and_abbreviations_decode_intact():
    """What a caption decoder writes must read back as written: no space put into "0.05", "e.g." or "1,000"."""
    numbers = CaptionTokenizer.train(["A european coin of 5 cents (0.05 euro)", "St. Paul's cathedral, e.g. at night",
                                      "1,000 people and a 3.5 kg bag", "A coin of 0.10 euro"], vocab_size=300)
    for text in ["5 cents (0.05 euro)", "e.g.", "st. paul's", "1,000", "3.5 kg", "a coin of 0.05 euro.", "no. 10"]:
        assert numbers.decode(numbers.encode(text)) == text


def test_state_round_trip(tokenizer):
    state = json.loads(json.dumps(tokenizer.state_dict()))  # it travels in checkpoints: must be JSON-able
    restored = CaptionTokenizer.from_state(state)
    assert ids_of(restored) == ids_of(tokenizer)
    assert restored.lowercase and restored.vocab_size == tokenizer.vocab_size


def test_save_and_load(tokenizer, tmp_path):
    paths = tokenizer.save(tmp_path / "tok")
    assert sorted(p.name for p in paths) == ["merges.txt", "tokenizer.json", "tokenizer_config.json", "vocab.json"]
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == sorted(p.name for p in paths)  # no temp files left
    assert ids_of(CaptionTokenizer.load(tmp_path / "tok")) == ids_of(tokenizer)
    assert ids_of(CaptionTokenizer.load(tmp_path / "tok" / "tokenizer.json")) == ids_of(tokenizer)

    # vocab.json + merges.txt alone, as GPT-2-style tools write them; the config keeps the lowercasing
    bpe = tmp_path / "bpe"
    bpe.mkdir()
    for name in ["vocab.json", "merges.txt", "tokenizer_config.json"]:
        shutil.copy(tmp_path / "tok" / name, bpe / name)
    loaded = CaptionTokenizer.load(bpe)
    assert ids_of(loaded) == ids_of(tokenizer) and loaded.lowercase
    assert (loaded.pad_id, loaded.bos_id, loaded.eos_id, loaded.vocab_size) == (0, 1, 2, tokenizer.vocab_size)


def test_a_tokenizer_without_the_specials_gets_them_at_0_1_2(tmp_path):
    """Like GPT-2's files: no <pad>, <s>, </s>. They are added first and the other tokens move up by three."""
    plain = Tokenizer(models.BPE())
    plain.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    plain.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    plain.train_from_iterator(CAPTIONS, trainer)
    plain.model.save(str(tmp_path))
    (tmp_path / "other").mkdir()
    plain.save(str(tmp_path / "other" / "tokenizer.json"))

    for path in [tmp_path, tmp_path / "other" / "tokenizer.json"]:
        loaded = CaptionTokenizer.load(path)
        assert (loaded.pad_id, loaded.bos_id, loaded.eos_id) == (0, 1, 2) and not loaded.lowercase
        assert loaded.vocab_size == plain.get_vocab_size() + 3
        text = "A dog runs on the beach"
        assert loaded.encode(text) == [i + 3 for i in plain.encode(text).ids]
        assert loaded.decode([1, *loaded.encode(text), 2]) == text
        assert loaded.tokenizer.token_to_id("<|endoftext|>") == plain.token_to_id("<|endoftext|>") + 3


def test_missing_tokenizer_files_are_a_clear_error(tmp_path):
    with pytest.raises(PlaitError, match="does not exist"):
        CaptionTokenizer.load(tmp_path / "nowhere")
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(PlaitError, match="neither tokenizer.json nor vocab.json"):
        CaptionTokenizer.load(tmp_path)
    (tmp_path / "bad.json").write_text("not json")
    with pytest.raises(PlaitError, match="cannot read the tokenizer"):
        CaptionTokenizer.load(tmp_path / "bad.json")
