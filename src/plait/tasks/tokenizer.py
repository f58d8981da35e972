"""The captions' tokenizer: byte-level BPE (the `tokenizers` library), trained on the training captions or loaded.

Byte-level means every string can be encoded (256 byte tokens underlie the merges), so `decode(encode(text))`
gives the text back, accents and emoji included; no caption is ever mapped to an unknown token.

Three special tokens always sit at ids 0, 1, 2: `<pad>`, `<s>` (start) and `</s>` (end). The caption task relies on
padding being 0 (an absent caption is a row of zeros), so a loaded tokenizer is renumbered to put them there (see
`load`). Lowercasing lives in the tokenizer's normalizer, so `tokenizer.json` and the checkpoint state carry it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from plait.errors import PlaitError

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIALS = (PAD, BOS, EOS)
CONFIG = "tokenizer_config.json"


class CaptionTokenizer:
    """Captions ↔ token ids; `encode` adds no special tokens, `decode` stops at the first `</s>`."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        # a caption that happens to contain "</s>" is text, not the end token
        self.tokenizer.encode_special_tokens = True
        self.pad_id, self.bos_id, self.eos_id = (tokenizer.token_to_id(token) for token in SPECIALS)
        pipeline = _json(tokenizer)
        self._lowercase = _lowercases(pipeline["normalizer"])
        byte_level = _find(pipeline["pre_tokenizer"], "ByteLevel")
        self._add_prefix_space = bool(byte_level.get("add_prefix_space", True)) if byte_level else True

    # ── making one ───────────────────────────────────────────────────────────────────────────────
    @classmethod
    def train(cls, texts: list[str], vocab_size: int = 4000, min_frequency: int = 2, lowercase: bool = True) -> CaptionTokenizer:
        """A byte-level BPE learned from `texts`: the 256 byte tokens, the three specials, then merges until
        `vocab_size` tokens (fewer when the captions run out of pairs seen `min_frequency` times). Deterministic."""
        texts = [text.strip() for text in texts if text and text.strip()]
        if not texts:
            raise PlaitError("cannot train a caption tokenizer: there are no non-empty training captions")
        tokenizer = _byte_level(models.BPE(), lowercase, add_prefix_space=True)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer, length=len(texts))
        return cls(tokenizer)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CaptionTokenizer:
        """A tokenizer from `tokenizer.json` (a file, or a folder holding one; preferred when both kinds are there)
        or from a folder with `vocab.json` + `merges.txt` (byte-level BPE such as GPT-2's). For the latter a
        `tokenizer_config.json` written by `save` restores lowercasing; without one the text is kept as it is.

        When `<pad>`, `<s>` and `</s>` are missing, or not at ids 0, 1, 2 (GPT-2 has none, RoBERTa has them in
        another order), the vocabulary is renumbered: the three specials first, every other token after them in
        its original order. The ids then differ from the original tokenizer's, which only matters to someone
        reusing that tokenizer's embeddings; the decoder here learns its own, and `save` writes the new numbering.
        """
        path = Path(path).expanduser()
        if not path.exists():
            raise PlaitError(f"tokenizer path {path} does not exist")
        folder = path.parent if path.is_file() else path
        config = _read_config(folder / CONFIG)
        try:
            if path.is_file():
                tokenizer = Tokenizer.from_file(str(path))
            elif (path / "tokenizer.json").is_file():
                tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
                model = models.BPE.from_file(str(path / "vocab.json"), str(path / "merges.txt"))
                tokenizer = _byte_level(model, config.get("lowercase", False), config.get("add_prefix_space", True))
            else:
                raise PlaitError(f"tokenizer folder {path} holds neither tokenizer.json nor vocab.json + merges.txt")
        except PlaitError:
            raise
        except Exception as error:  # tokenizers raises plain exceptions for files it cannot parse
            raise PlaitError(f"cannot read the tokenizer in {path}: {error}") from error
        return cls(_specials_first(tokenizer))

    # ── what it is ───────────────────────────────────────────────────────────────────────────────
    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def lowercase(self) -> bool:
        return self._lowercase

    # ── using it ─────────────────────────────────────────────────────────────────────────────────
    def encode(self, text: str) -> list[int]:
        """The ids of the stripped (and, when set, lowercased) text, without special tokens."""
        return self.tokenizer.encode(text.strip(), add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ids up to the first `</s>`, padding and `<s>` left out (generated sequences carry all three)."""
        kept = []
        for token in ids:
            token = int(token)
            if token == self.eos_id:
                break
            if token not in (self.pad_id, self.bos_id):
                kept.append(token)
        return self.tokenizer.decode(kept, skip_special_tokens=True).strip()

    # ── keeping it ───────────────────────────────────────────────────────────────────────────────
    def save(self, folder: str | os.PathLike) -> list[Path]:
        """`vocab.json` + `merges.txt` (what GPT-2-style tools read), `tokenizer.json` (the whole pipeline) and
        `tokenizer_config.json` (lowercasing and the special tokens), each written whole and renamed into place."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-tokenizer-", dir=folder))
        try:
            written = [Path(file) for file in self.tokenizer.model.save(str(staging))]
            self.tokenizer.save(str(staging / "tokenizer.json"), pretty=True)
            config = {"lowercase": self.lowercase, "add_prefix_space": self._add_prefix_space,
                      "pad_token": PAD, "bos_token": BOS, "eos_token": EOS}
            (staging / CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
            paths = []
            for file in [*written, staging / "tokenizer.json", staging / CONFIG]:
                os.replace(file, folder / file.name)
                paths.append(folder / file.name)
            return paths
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def state_dict(self) -> dict:
        """JSON-able: how the tokenizer travels inside checkpoints."""
        return {"tokenizer": self.tokenizer.to_str(), "lowercase": self.lowercase}

    @classmethod
    def from_state(cls, state: dict) -> CaptionTokenizer:
        return cls(Tokenizer.from_str(state["tokenizer"]))


def _byte_level(model, lowercase: bool, add_prefix_space: bool) -> Tokenizer:
    """The byte-level pipeline around a BPE model. A prefix space makes a caption's first word the same tokens
    as it would be mid-sentence; `decode` strips it again."""
    tokenizer = Tokenizer(model)
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _specials_first(tokenizer: Tokenizer) -> Tokenizer:
    """The same tokenizer with `<pad>`, `<s>`, `</s>` at ids 0, 1, 2 (added when missing); see `CaptionTokenizer.load`."""
    if [tokenizer.token_to_id(token) for token in SPECIALS] == [0, 1, 2]:
        return tokenizer
    data = _json(tokenizer)
    vocab = data["model"].get("vocab")
    if not isinstance(vocab, dict):
        raise PlaitError(f"cannot add {', '.join(SPECIALS)} to a {data['model'].get('type')} tokenizer; use a BPE one")
    by_id = {index: token for token, index in vocab.items()}
    by_id.update((added["id"], added["content"]) for added in data["added_tokens"])
    order = [*SPECIALS, *(token for _, token in sorted(by_id.items()) if token not in SPECIALS)]
    new_id = {token: index for index, token in enumerate(order)}
    data["model"]["vocab"] = {token: new_id[token] for token in order if token in vocab or token in SPECIALS}
    specials = [{"id": new_id[token], "content": token, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True} for token in SPECIALS]
    others = [{**added, "id": new_id[added["content"]]} for added in data["added_tokens"] if added["content"] not in SPECIALS]
    data["added_tokens"] = specials + others
    # these name ids of the old numbering; plait adds and pads the special tokens itself
    data["post_processor"] = data["padding"] = data["truncation"] = None
    return Tokenizer.from_str(json.dumps(data))


def _json(tokenizer: Tokenizer) -> dict:
    return json.loads(tokenizer.to_str())


def _find(component: dict | None, kind: str) -> dict | None:
    """The `kind` step of a normalizer or pre-tokenizer, looking inside `Sequence`s."""
    if not component:
        return None
    if component.get("type") == kind:
        return component
    for part in component.get("normalizers") or component.get("pretokenizers") or []:
        found = _find(part, kind)
        if found:
            return found
    return None


def _lowercases(normalizer: dict | None) -> bool:
    bert = _find(normalizer, "BertNormalizer")  # BERT-style normalizers lowercase through a flag
    return _find(normalizer, "Lowercase") is not None or bool(bert and bert.get("lowercase"))


def _read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise PlaitError(f"cannot read {path}: {error}") from error
