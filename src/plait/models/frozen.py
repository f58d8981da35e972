"""Frozen-encoder embeddings computed once: an input whose encoder has `freeze: true` and `cache_embeddings: true`
is replaced, in every encoded split, by its encoder's output per row, so training runs only the trainable parts.

The embeddings are kept in the preprocessing cache, keyed by the row's cell key and by everything that shapes
the encoder's output (the input's settings, the encoder's config and a digest of its weights): a later run with
the same frozen encoder reads them back without running the encoder at all.
"""

from __future__ import annotations

import hashlib

import torch

from plait.console import progress_bar, say
from plait.data.cache import CachedCells, FeatureCache, digest
from plait.data.columns import Column
from plait.data.dataset import EncodedSplit, select, to_device


class Embeddings(Column):
    """The stand-in column of an embedded input: each cell is `{"embedding": float [dim]}`."""

    def __init__(self, spec, dim: int):
        super().__init__(spec)
        self.dim = dim

    def empty(self):
        return {"embedding": torch.zeros(self.dim)}


def weights_digest(module: torch.nn.Module) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        hasher.update(name.encode())
        hasher.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()


def embedded_inputs(config) -> list:
    return [spec for spec in config.inputs if spec.encoder.cache_embeddings]


@torch.no_grad()
def embed_frozen_inputs(model, features: dict, config, splits: dict[str, EncodedSplit], cache: FeatureCache | None,
                        device: torch.device) -> None:
    """Replace each embedded input of every split by its encoder's output (in place)."""
    for spec in embedded_inputs(config):
        encoder, feature = model.encoders[spec.name], features[spec.name]
        settings = spec.model_dump(mode="json", exclude={"name", "column", "missing", "cache"})
        identity = digest(feature.name, settings, weights_digest(encoder), feature.state_dict())
        store = None
        if cache is not None:
            store = cache.store(f"embedding-{spec.encoder.name}-{identity[:16]}", {"embeddings of": spec.name, **settings})
        for split in splits.values():
            split.inputs[spec.name] = _embed_split(encoder, feature, spec, split, store, cache, device, config.train.evaluation_batch_size)
    if cache is not None:
        cache.save_stats()


def _embed_split(encoder, feature, spec, split, store, cache, device, batch_size):
    cells = split.inputs[spec.name]
    column = Embeddings(spec, encoder.out_dim)
    keys = cells.keys if isinstance(cells, CachedCells) and store is not None else None
    if keys is None:  # the input is not in the cache: embed every row, keep the result in memory
        present = cells["present"]
        vectors = _run_encoder(encoder, feature, cells, torch.arange(len(split)), device, batch_size, f"embedding {spec.name} ({split.name})")
        return {"embedding": vectors, "present": present}
    stats = cache.stats[store.folder.name]
    todo = [i for i, key in enumerate(keys) if key is not None and key not in store]
    stats.hits += sum(key is not None for key in keys) - len(todo)
    stats.misses += len(todo)
    if todo:
        vectors = _run_encoder(encoder, feature, cells, torch.tensor(todo), device, batch_size, f"embedding {spec.name} ({split.name})")
        for position, vector in zip(todo, vectors):
            if keys[position] not in store:  # the same content can appear on two rows
                store.add(keys[position], {"embedding": vector})
        store.flush()
    else:
        say(f"embeddings of {spec.name} ({split.name}): all {len(keys)} rows from the cache")
    return CachedCells(column, store, keys)


def _run_encoder(encoder, feature, cells, rows: torch.Tensor, device, batch_size: int, description: str) -> torch.Tensor:
    """The frozen encoder's output for `rows` of one input, batch by batch, on the training device."""
    was_training = encoder.training
    encoder.eval()
    outputs = []
    for indices in progress_bar(rows.split(batch_size), description, total=-(-len(rows) // batch_size)):
        batch = to_device(select(cells, indices), device)
        outputs.append(encoder(feature.prepare(batch, training=False)).float().cpu())
    encoder.train(was_training)
    return torch.cat(outputs) if outputs else torch.zeros(0, encoder.out_dim)
