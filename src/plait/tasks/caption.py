"""`caption` output: write a sentence for the inputs (an image, mostly) with a Transformer decoder.

Targets are byte-level BPE token ids `[<s>, tokens…, </s>, <pad>…]` (a tokenizer trained on the training captions
unless one is given). The collate step cuts a batch to its longest caption and shifts it: the decoder reads
`<s> w1 … wn` and learns to predict `w1 … wn </s>` (teacher forcing); padding is left out of the loss.

Ending a caption is the end token's job. A caption's one sentence-final period is dropped before it is encoded:
were it kept, "." would nearly always be followed by `</s>`, and the decoder would learn to stop at the "." of
"0.05" or "st. paul's" too. Generated captions get the period back when most training captions had one. A caption
cut at `tokenizer.max_length` gets no `</s>`, so that the decoder does not learn to stop where it was cut.

Evaluation generates one caption per image (greedy or beam search) and scores it against every reference caption
of that image: the rows whose `references` column holds the same value (all captions of one photo).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from plait.errors import MissingValue, PlaitError
from plait.models.caption_head import CaptionHead
from plait.registry import TASKS
from plait.tasks.base import TaskType
from plait.tasks.tokenizer import CaptionTokenizer
from plait.settings.caption import CaptionOutput

IGNORED = -100  # label of a position left out of the loss (padding, a row without a caption)
# one sentence-final period and the spaces before it ("a dog runs ." as Flickr writes it); an ellipsis is left alone
FINAL_PERIOD = re.compile(r"(?<!\.)\s*\.$")


def without_final_period(text: str) -> str:
    return FINAL_PERIOD.sub("", text.strip())


@TASKS.register("caption")
class CaptionTask(TaskType):
    Settings = CaptionOutput
    main_metric = "cider"
    metric_modes: ClassVar[dict[str, str]] = {"perplexity": "min", "bleu[1-4]": "max", "cider": "max"}

    def __init__(self, spec: CaptionOutput, base_dir="."):
        super().__init__(spec, base_dir)
        self.tokenizer: CaptionTokenizer | None = None
        self.final_period = False  # whether generated captions end with "." (most training captions did)

    # ── what is learned from the training split ──────────────────────────────────────────────────
    def fit(self, values):
        settings = self.spec.tokenizer
        texts = [str(value).strip() for value in values]
        self.final_period = 2 * sum(FINAL_PERIOD.search(text) is not None for text in texts) > len(texts)
        if settings.path:
            self.tokenizer = CaptionTokenizer.load(os.path.expanduser(settings.path))
        else:
            texts = [without_final_period(text) for text in texts]  # what `encode` will give it
            self.tokenizer = CaptionTokenizer.train(texts, settings.vocab_size, settings.min_frequency, settings.lowercase)
        if self.tokenizer.pad_id != 0:
            raise PlaitError(f"outputs.{self.spec.name}.tokenizer: the padding token must have id 0 (it has {self.tokenizer.pad_id})")

    def state_dict(self):
        return {"tokenizer": self.tokenizer.state_dict(), "final_period": self.final_period}

    def load_state_dict(self, state):
        self.tokenizer = CaptionTokenizer.from_state(state["tokenizer"])
        self.final_period = bool(state.get("final_period", False))  # older runs learned to write their own periods

    def save_files(self, folder: Path) -> list[Path]:
        return self.tokenizer.save(Path(folder) / "tokenizers" / self.spec.name)

    # ── targets ──────────────────────────────────────────────────────────────────────────────────
    @property
    def length(self) -> int:
        return self.spec.tokenizer.max_length

    def encode(self, value):
        ids = self.tokenizer.encode(without_final_period(str(value)))
        if not ids:
            raise MissingValue("no caption text")
        room = self.length - 2
        ending = [self.tokenizer.eos_id] if len(ids) <= room else []  # a cut caption: padding follows, no end
        sequence = [self.tokenizer.bos_id, *ids[:room], *ending]
        return torch.tensor(sequence + [self.tokenizer.pad_id] * (self.length - len(sequence)), dtype=torch.long)

    def empty(self):
        return torch.zeros(self.length, dtype=torch.long)  # all padding

    def row_info(self, rows):
        return {"caption": rows[self.spec.column].astype(str).tolist(), "group": rows[self.spec.references].astype(str).tolist()}

    def collate(self, target):
        """Cut the batch to its longest caption, then shift: decoder input `<s> w…`, labels `w… </s>`."""
        sequences, present = target["value"], target["present"]
        longest = max(int((sequences != self.tokenizer.pad_id).sum(1).max()), 2)
        sequences = sequences[:, :longest]
        labels = sequences[:, 1:].masked_fill(sequences[:, 1:] == self.tokenizer.pad_id, IGNORED)
        labels = labels.masked_fill(~present[:, None], IGNORED)
        return {**target, "input": sequences[:, :-1], "labels": labels}

    # ── model, loss, metrics ─────────────────────────────────────────────────────────────────────
    def build_head(self, in_dim, input_dims):
        return CaptionHead(in_dim, input_dims, self.tokenizer, self.spec.decoder, self.length, self.generation_options())

    def generation_options(self, **changes) -> dict:
        """beam_size, length_penalty and max_length of generation: the config's, with `changes` on top."""
        settings = self.spec.generation
        options = {"beam_size": settings.beam_size, "length_penalty": settings.length_penalty,
                   "max_length": settings.max_length or self.length - 1}
        options.update({key: value for key, value in changes.items() if value is not None})
        options["max_length"] = min(options["max_length"], self.length - 1)  # the decoder's positions end there
        return options

    def reduce(self, prediction, target):
        """Per-token logits → each row's summed loss and token count (what a whole split's loss needs)."""
        labels = target["labels"]
        nll = F.cross_entropy(prediction.float().transpose(1, 2), labels, ignore_index=IGNORED, reduction="none")
        return {"nll": nll.sum(1), "tokens": (labels != IGNORED).sum(1).float()}

    def loss(self, prediction, target):
        """Mean loss per caption token: from logits while training, from `reduce`'s sums when evaluating."""
        if isinstance(prediction, dict):
            return prediction["nll"].sum() / prediction["tokens"].sum().clamp(min=1)
        labels = target["labels"]
        if not (labels != IGNORED).any():
            return prediction.sum() * 0.0
        return F.cross_entropy(prediction.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORED,
                               label_smoothing=self.spec.label_smoothing)

    def metrics(self, prediction, target):
        mean = float(prediction["nll"].sum() / prediction["tokens"].sum().clamp(min=1))
        return {"perplexity": math.exp(min(mean, 50.0))}

    def text_metrics(self, captions: list[str], references: list[list[str]]) -> dict[str, float]:
        from plait.evaluation.captions import caption_metrics

        return caption_metrics(captions, references)

    def decode_ids(self, generated: list[list[int]]) -> list[str]:
        """Generated token ids → captions, each ended with "." when the training captions were."""
        captions = [self.tokenizer.decode(ids) for ids in generated]
        if not self.final_period:
            return captions
        return [caption + "." if caption and not caption.endswith((".", "!", "?")) else caption for caption in captions]

    def decode(self, prediction):
        """Generated token ids of a batch → the `NAME_pred` column of captions."""
        return {f"{self.spec.name}_pred": self.decode_ids(prediction)}
