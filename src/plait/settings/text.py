"""The keys of `text` inputs and of their encoders: types, defaults and doc strings, with no torch import, so a
config validates in a fraction of a second. The feature type (`plait/data/features/text.py`) and the encoders
(`plait/models/encoders/text.py`) read them."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from plait.schema import EncoderBase, InputBase


class TextSettings(InputBase):
    default_encoder: ClassVar[str] = "bag"  # the encoder used when the config names none
    type: Literal["text"] = "text"
    tokenizer: Literal["auto", "word", "bpe", "hf"] = Field(
        "auto",
        description="`word`: words and punctuation with a vocabulary learned from training. `bpe`: a byte-level BPE "
        "trained on the training split. `hf`: the tokenizer of a pretrained model. `auto`: `hf` when the encoder is "
        "`hf`, else `word`.",
    )
    tokenizer_path: str | None = Field(
        None, description="`hf`: a local Hugging Face tokenizer folder, or `minilm`. Default: the encoder's `path`."
    )
    vocab_size: int = Field(
        10000,
        ge=1,
        description="`word`: keep this many of the most frequent words (plus `<pad>` and `<unk>`). `bpe`: size of the "
        "whole BPE vocabulary.",
    )
    min_count: int = Field(1, ge=1, description="`word`: words seen fewer times than this in training become `<unk>`.")
    lowercase: bool = Field(True, description="`word`, `bpe`: lowercase text before tokenising.")
    max_length: int = Field(64, ge=1, description="Keep at most this many tokens of each text (the rest is cut off).")


class BagConfig(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("text",)  # the input types it reads
    name: Literal["bag"] = "bag"
    dim: int = Field(64, ge=1, description="Size of each token's embedding and of the output (their mean).")


class TransformerConfig(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("text",)  # the input types it reads
    name: Literal["transformer"] = "transformer"
    dim: int = Field(64, ge=1, description="Width of the token embeddings, the layers and the output.")
    heads: int = Field(4, ge=1, description="Attention heads per layer; must divide `dim`.")
    layers: int = Field(2, ge=1, description="Number of transformer encoder layers.")
    ff: int = Field(128, ge=1, description="Width of each layer's feed-forward block.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout inside the layers and on the embeddings.")

    @model_validator(mode="after")
    def _heads_divide_dim(self):
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        return self


class HfConfig(EncoderBase):
    modalities: ClassVar[tuple[str, ...]] = ("text",)  # the input types it reads
    name: Literal["hf"] = "hf"
    path: str = Field(description="Local folder of a Hugging Face model (config.json + weights), or `minilm`.")
    pooling: Literal["mean", "cls", "pooler"] = Field(
        "mean", description="`mean`: average of the last hidden states over real tokens. `cls`: the first token's. "
        "`pooler`: the model's pooled output (BERT's `pooler_output`: the first token through its trained dense + tanh "
        "layer), as pipelines built on `BertModel(...).pooler_output` use it.",
    )
