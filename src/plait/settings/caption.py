"""The keys of the `caption` output: tokenizer, decoder and generation (the task is `plait/tasks/caption.py`), with
no torch import."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt, model_validator

from plait.schema import OutputBase, Section


class TokenizerSettings(Section):
    path: str | None = Field(
        None,
        description="A tokenizer to use as it is: a folder with `vocab.json` + `merges.txt` (byte-level BPE, e.g. "
        "GPT-2's) or a `tokenizer.json`. null: train a byte-level BPE on the training captions and save it into the "
        "run folder (`tokenizers/NAME/`).",
    )
    vocab_size: PositiveInt = Field(4000, ge=300, description="Vocabulary size of a trained tokenizer (256 bytes + merges + 3 special tokens).")
    min_frequency: PositiveInt = Field(2, description="A trained tokenizer only merges pairs seen at least this often.")
    lowercase: bool = Field(True, description="Lowercase captions before a trained tokenizer sees them.")
    max_length: int = Field(32, ge=4, description="Tokens per caption including the start and end tokens; longer captions are cut.")


class DecoderSettings(Section):
    dim: PositiveInt = Field(256, description="Width of the decoder (token embeddings, attention, memory).")
    heads: PositiveInt = Field(4, description="Attention heads; must divide `dim`.")
    layers: PositiveInt = Field(3, description="Transformer decoder layers.")
    ff_dim: PositiveInt = Field(1024, description="Width of each layer's feed-forward block.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout in the decoder.")

    @model_validator(mode="after")
    def _heads_divide_dim(self):
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        return self


class GenerationSettings(Section):
    beam_size: PositiveInt = Field(3, description="Beams of the beam search; 1 is greedy decoding.")
    length_penalty: float = Field(
        1.0, description="A finished caption scores (sum of log-probabilities) / length ** length_penalty: above 0 favours longer captions, 0 is the plain probability."
    )
    max_length: PositiveInt | None = Field(None, description="Most tokens to generate, the end token included; null: `tokenizer.max_length` - 1.")


class CaptionOutput(OutputBase):
    generates: ClassVar[bool] = True
    type: Literal["caption"] = "caption"
    references: str | None = Field(
        None,
        description="Column whose equal values mark the rows that caption the same thing (the image path): evaluation "
        "generates once per value and scores against all of its captions, and a random split keeps them together. "
        "null: the first input's column.",
    )
    tokenizer: TokenizerSettings = Field(default_factory=TokenizerSettings, description="The captions' tokenizer.")
    decoder: DecoderSettings = Field(default_factory=DecoderSettings, description="The Transformer decoder.")
    generation: GenerationSettings = Field(default_factory=GenerationSettings, description="How captions are written at evaluation and prediction.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the training loss (evaluation reports the plain loss).")
    samples: int = Field(50, ge=0, description="Generated captions written next to their references in `evaluation/SPLIT_NAME_samples.json`.")
