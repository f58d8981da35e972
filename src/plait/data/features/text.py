"""`text`: a string per row, split into token ids by a word, BPE or Hugging Face tokenizer.

`word` and `bpe` learn their vocabulary from the training split; `hf` loads the tokenizer that belongs to a
pretrained model from a local folder (never a download). Id 0 is `<pad>` and id 1 is `<unk>` for `word` and
`bpe`; `hf` uses the tokenizer's own ids. A batch is padded to its longest row:
`{"ids": long[N, L], "attention_mask": bool[N, L], "present": bool[N]}`.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import torch

from plait.data.features.base import FeatureType, shortened
from plait.errors import PlaitError
from plait.html import escape
from plait.pretrained import ALIASES, resolve_pretrained
from plait.registry import FEATURES
from plait.settings.text import TextSettings

PAD, UNK = "<pad>", "<unk>"
WORD = re.compile(r"\w+|[^\w\s]")  # runs of letters/digits (any script), or single punctuation marks


def resolve_tokenizer(path: str) -> str:
    """A local folder with tokenizer files (no model weights needed), or an alias of a packaged model."""
    folder = Path(path).expanduser()
    if path.lower() not in ALIASES and any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        return str(folder.resolve())
    return resolve_pretrained(path)  # aliases, model folders, or the "plait never downloads" error


def load_hf_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_tokenizer(path), local_files_only=True)
    except (OSError, ValueError) as error:
        raise PlaitError(f"{path}: cannot load a Hugging Face tokenizer from this folder: {error}") from None


@FEATURES.register("text")
class Text(FeatureType):
    Settings = TextSettings
    cache_keys = ("tokenizer", "lowercase", "max_length")  # plus the fitted tokenizer (its state), which the cache adds itself

    def __init__(self, spec, base_dir="."):
        super().__init__(spec, base_dir)
        encoder = getattr(spec, "encoder", None)
        self.kind = spec.tokenizer
        if self.kind == "auto":
            self.kind = "hf" if getattr(encoder, "name", None) == "hf" else "word"
        self.hf_path = spec.tokenizer_path or getattr(encoder, "path", None)
        if self.kind == "hf" and not self.hf_path:
            raise PlaitError(f"inputs.{spec.name}.tokenizer_path: tokenizer `hf` needs a local tokenizer folder or `minilm`")
        self.vocabulary: list[str] = []
        self.index: dict[str, int] = {}
        self.bpe = None  # tokenizers.Tokenizer, for `bpe`
        self.hf = None  # transformers tokenizer, for `hf`
        self.vocab_size = 2  # what encoders size their embedding tables with
        self.pad_id, self.unk_id = 0, 1
        self.fitted = False

    def fit(self, values):
        texts = [self._normalise(v) for v in values]
        if self.kind == "word":
            counts = Counter(token for text in texts for token in WORD.findall(text))
            # sorting by (count, token) makes the vocabulary independent of row order and of ties
            ranked = sorted((t for t, n in counts.items() if n >= self.spec.min_count), key=lambda t: (-counts[t], t))
            self.load_state_dict({"tokenizer": "word", "vocabulary": [PAD, UNK] + ranked[: self.spec.vocab_size]})
        elif self.kind == "bpe":
            self.load_state_dict({"tokenizer": "bpe", "bpe": self._train_bpe(texts).to_str()})
        else:
            self.load_state_dict({"tokenizer": "hf", "path": self.hf_path})

    def _train_bpe(self, texts: list[str]):
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        # Byte-level: every string, in any script, maps to known tokens, so `<unk>` never appears in new text.
        # No continuing-subword prefix, which is what keeps the trainer's output the same from run to run.
        tokenizer = Tokenizer(models.BPE(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=self.spec.vocab_size,
            special_tokens=[PAD, UNK],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer)
        return tokenizer

    def state_dict(self):
        if self.kind == "word":
            return {"tokenizer": "word", "vocabulary": self.vocabulary}
        if self.kind == "bpe":
            return {"tokenizer": "bpe", "bpe": self.bpe.to_str() if self.bpe else None}
        # an alias stays an alias, so a checkpoint still loads after the virtualenv moves
        path = self.hf_path if self.hf_path.lower() in ALIASES else resolve_tokenizer(self.hf_path)
        return {"tokenizer": "hf", "path": path}

    def load_state_dict(self, state):
        self.kind, self.fitted = state["tokenizer"], True
        if self.kind == "word":
            self.vocabulary = list(state["vocabulary"])
            self.index = {token: i for i, token in enumerate(self.vocabulary)}
            self.vocab_size, self.pad_id, self.unk_id = len(self.vocabulary), 0, 1
        elif self.kind == "bpe":
            from tokenizers import Tokenizer

            self.bpe = Tokenizer.from_str(state["bpe"])
            self.vocab_size = self.bpe.get_vocab_size()
            self.pad_id, self.unk_id = self.bpe.token_to_id(PAD), self.bpe.token_to_id(UNK)
        else:
            self.hf_path = state["path"]
            self.hf = load_hf_tokenizer(self.hf_path)
            self.vocab_size = len(self.hf)
            pad = self.hf.pad_token_id if self.hf.pad_token_id is not None else self.hf.eos_token_id
            self.pad_id = pad if pad is not None else 0
            self.unk_id = self.hf.unk_token_id if self.hf.unk_token_id is not None else self.pad_id

    def _normalise(self, value) -> str:
        text = value if isinstance(value, str) else str(value)
        return text.lower() if self.spec.lowercase and self.kind != "hf" else text

    def encode(self, value):
        if not self.fitted:
            raise RuntimeError("text feature used before fit() or load_state_dict()")
        text = self._normalise(value)
        if self.kind == "word":
            ids = [self.index.get(token, self.unk_id) for token in WORD.findall(text)]
        elif self.kind == "bpe":
            ids = self.bpe.encode(text).ids
        else:
            ids = self.hf(text, truncation=True, max_length=self.spec.max_length)["input_ids"]
        ids = ids[: self.spec.max_length] or [self.unk_id]
        return torch.tensor(ids, dtype=torch.long)

    def empty(self):
        return torch.tensor([self.pad_id], dtype=torch.long)

    def stack(self, values):
        """Pads to the longest row; a missing row is one `<pad>` with no real token (attention_mask all zero)."""
        present = torch.tensor([v is not None for v in values], dtype=torch.bool)
        length = max([len(v) for v in values if v is not None] + [1])
        ids = torch.full((len(values), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(values), length), dtype=torch.bool)
        for row, value in enumerate(values):
            if value is not None:
                ids[row, : len(value)] = value
                mask[row, : len(value)] = True
        return {"ids": ids, "attention_mask": mask, "present": present}

    def preview(self, value, size):
        """The text, cut at about 300 characters."""
        return f'<div class="text">{escape(shortened(str(value)))}</div>'
