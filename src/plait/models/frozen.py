"""Frozen backbones' outputs computed once: an input whose encoder has `freeze: true` is replaced, in every encoded
split, by its backbone's output per row (`cache_embeddings`: by default wherever that is exact), so training runs
only the trainable parts, the encoder's projection among them.

The embeddings are kept in the preprocessing cache, keyed by the row's cell key and by everything that shapes
the backbone's output (the input's settings, the encoder's config less its projection, a digest of the backbone's
weights): a later run with the same frozen backbone reads them back without running it at all.
"""

from __future__ import annotations

import hashlib

import torch

from plait.console import progress_bar, say
from plait.data.cache import CachedCells, FeatureCache, digest
from plait.data.columns import Column
from plait.data.dataset import EncodedSplit, select, to_device
from plait.data.division import ALONE, Division


class Embeddings(Column):
    """The stand-in column of an embedded input: each cell is `{"embedding": float [dim]}`, plus the encoder's token
    sequence `{"tokens": float16 [length, dim]}` when a caption decoder attends to it."""

    def __init__(self, spec, dim: int, token_shape: tuple[int, ...] | None = None):
        super().__init__(spec)
        self.dim, self.token_shape = dim, token_shape

    def empty(self):
        cell = {"embedding": torch.zeros(self.dim)}
        if self.token_shape is not None:
            cell["tokens"] = torch.zeros(self.token_shape, dtype=torch.float16)
        return cell


def backbone_digest(encoder) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    for name, tensor in encoder.state_dict().items():
        if name.startswith("project."):
            continue
        hasher.update(name.encode())
        hasher.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()


def embedded_inputs(config) -> list:
    """The inputs whose frozen backbone's output is computed once: `cache_embeddings: true`, or by default (null)
    where that is exact: a frozen encoder whose input has no augmentation, in a model with no caption decoder
    (which attends to token sequences, cached only in float16)."""
    attended = any(spec.generates for spec in config.outputs)
    return [spec for spec in config.inputs if caches_embeddings(spec, attended)]


def caches_embeddings(spec, attended: bool) -> bool:
    if spec.encoder.cache_embeddings is not None:
        return spec.encoder.cache_embeddings
    augment = getattr(spec, "augment", None)
    return spec.encoder.freeze and not (augment is not None and augment.active) and not attended


def frozen_notes(spec, encoder, warm_started: bool) -> list[str]:
    """What to tell a user about an encoder frozen where that holds back less than they may think."""
    if not spec.encoder.freeze:
        return []
    if next(encoder.backbone_parameters(), None) is None:
        return ["`freeze: true` has nothing to freeze: the encoder has no weights besides its projection"]
    if spec.encoder.pretrained is None and not warm_started:
        trained = "its projection and the layers after it" if spec.encoder.projection else "only the layers after it"
        return [f"frozen at its random initial weights (no `path` or `weights`, no --init-from): {trained} learn"]
    return []


@torch.no_grad()
def embed_frozen_inputs(model, features: dict, config, splits: dict[str, EncodedSplit], cache: FeatureCache | None,
                        device: torch.device, division: Division = ALONE) -> None:
    """Replace each embedded input of every split by its frozen backbone's output (in place). Processes that share
    the cache (`division`) each compute a share of the rows missing from it."""
    with_tokens = bool(model.attending)  # a caption decoder attends to the encoder's token sequence too
    for spec in embedded_inputs(config):
        encoder, feature = model.encoders[spec.name], features[spec.name]
        settings = spec.model_dump(mode="json", exclude={"name": True, "column": True, "missing": True, "cache": True,
                                                         "encoder": {"projection", "cache_embeddings"}})
        identity = digest(feature.name, settings, backbone_digest(encoder), feature.state_dict(), with_tokens)
        store = None
        if cache is not None:
            store = cache.store(f"embedding-{spec.encoder.name}-{identity[:16]}", {"embeddings of": spec.name, "tokens": with_tokens, **settings})
        for split in splits.values():
            split.inputs[spec.name] = _embed_split(encoder, feature, spec, split, store, cache, device,
                                                   config.train.evaluation_batch_size, with_tokens, division)
        why = "cache_embeddings: true" if spec.encoder.cache_embeddings else "frozen, no augmentation; cache_embeddings: false turns it off"
        say(f"inputs.{spec.name}: the frozen backbone's output is computed once per row ({why}); training runs only what follows it")
    if cache is not None:
        cache.save_stats()


def _embed_split(encoder, feature, spec, split, store, cache, device, batch_size, with_tokens, division):
    cells = split.inputs[spec.name]
    description = f"embedding {spec.name} ({split.name})"
    keys = cells.keys if isinstance(cells, CachedCells) and store is not None else None
    if keys is None:  # the input is not in the cache: embed every row (a share of them each), keep it in memory
        rows = division.mine(list(range(len(split))))
        embedded = _run_encoder(encoder, feature, cells, torch.tensor(rows, dtype=torch.long), device, batch_size,
                                description, with_tokens)
        if division.shared:
            embedded = _joined(division.collect((rows, embedded)), len(split))
        return {**embedded, "present": cells["present"]}
    stats = cache.stats[store.folder.name]
    first = {key: i for i, key in reversed(list(enumerate(keys))) if key is not None}  # rows sharing content run once
    missing = division.agree([key for key in first if key not in store])
    todo = sorted(first[key] for key in division.mine(missing) if key in first)
    stats.hits += sum(key is not None for key in keys) - len(todo)
    stats.misses += len(todo)
    if todo:
        embedded = _run_encoder(encoder, feature, cells, torch.tensor(todo), device, batch_size, description, with_tokens)
        for index, position in enumerate(todo):
            store.add(keys[position], {field: values[index] for field, values in embedded.items()})
    elif not missing:
        say(f"embeddings of {spec.name} ({split.name}): all {len(keys)} rows from the cache")
    store.settle(division)
    token_shape = tuple(store.read(next(k for k in keys if k is not None))["tokens"].shape) if with_tokens and any(keys) else None
    return CachedCells(Embeddings(spec, encoder.feature_dim, token_shape), store, keys)


def _joined(shares: list[tuple[list[int], dict]], rows: int) -> dict[str, torch.Tensor]:
    """Each process's embedded rows put together in row order."""
    joined = {}
    for positions, embedded in shares:
        for name, values in embedded.items():
            if name not in joined:
                joined[name] = values.new_zeros(rows, *values.shape[1:])
            joined[name][positions] = values
    return joined


def _run_encoder(encoder, feature, cells, rows: torch.Tensor, device, batch_size: int, description: str,
                 with_tokens: bool) -> dict[str, torch.Tensor]:
    """The frozen backbone's output for `rows` of one input, batch by batch, on the training device: `embedding`
    [rows, dim], and `tokens` [rows, length, dim] in float16 when asked."""
    was_training = encoder.training
    encoder.eval()
    vectors, sequences = [], []
    for indices in progress_bar(rows.split(batch_size), description, total=-(-len(rows) // batch_size)):
        batch = feature.prepare(to_device(select(cells, indices), device), training=False)
        if with_tokens:
            vector, tokens = encoder.encode_tokens(batch)
            sequences.append(tokens.half().cpu())
        else:
            vector = encoder(batch)
        vectors.append(vector.float().cpu())
    encoder.train(was_training)
    embedded = {"embedding": torch.cat(vectors) if vectors else torch.zeros(0, encoder.feature_dim)}
    if with_tokens and sequences:
        embedded["tokens"] = torch.cat(sequences)
    return embedded
