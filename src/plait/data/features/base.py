"""The contract of a feature type (one input modality). One subclass per file in this folder."""

from __future__ import annotations

import os
from typing import ClassVar

from plait.data.cache_folder import digest
from plait.data.columns import Column
from plait.data.remote import RemoteError, file_fingerprint, open_cached
from plait.errors import BadSample
from plait.html import escape
from plait.schema import InputBase

TEXT_CHARACTERS = 300  # longer texts are cut here in previews, with an ellipsis


def shortened(text: str) -> str:
    """`text` cut at TEXT_CHARACTERS, with an ellipsis when something was cut."""
    return text if len(text) <= TEXT_CHARACTERS else text[:TEXT_CHARACTERS].rstrip() + "…"


class FeatureType(Column):
    """An input modality: schema of its preprocessing keys, decode + preprocess per cell, batched on-device step.

    Encoders for this modality read what they need (vocabulary size, channels, ...) from the fitted instance.
    """

    Settings: ClassVar[type[InputBase]] = InputBase  # its keys, declared in `plait/settings/` (no torch there)
    default_encoder: ClassVar[str] = ""  # encoder used when the config names none: the settings' own
    cache_by_default: ClassVar[bool] = False  # store encoded cells in the preprocessing cache unless `cache: false`
    cache_keys: ClassVar[tuple[str, ...]] = ()  # the settings that change what `encode` returns
    cache_version: ClassVar[int] = 1  # bump when `encode` changes, so old cache entries stop matching

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.default_encoder = getattr(cls.Settings, "default_encoder", "")

    def fingerprint(self, value) -> str:
        """The cache key of a cell's content."""
        return digest(str(value))

    def prepare(self, batch: dict, training: bool) -> dict:
        """Runs on the device on a whole batch: normalisation, and augmentation when `training` is true."""
        return batch

    def preview(self, value, size: int) -> str:
        """A non-missing cell as self-contained HTML for the report's sample gallery, at most `size` pixels a side
        (pictures as `data:` URIs, text escaped); may raise when the cell cannot be read (the report shows why).
        Default: the value as short text (numbers, categories)."""
        return escape(shortened(f"{value:.6g}" if isinstance(value, float) else str(value)))


class FileFeature(FeatureType):
    """A modality whose cells are file paths (image, video, audio): local, relative to the data root, or any
    fsspec URL such as `s3://`."""

    def locate(self, value) -> str:
        """A cell → the path or URL to open: relative paths resolve against the data root."""
        path = os.path.expanduser(str(value).strip())
        if "://" in path or os.path.isabs(path):
            return path
        return os.path.join(self.base_dir, path)

    def local_path(self, value) -> str:
        """A cell → a local file to open: a remote object is downloaded once into the download cache (retrying
        transient failures) and read from there; one that cannot be fetched is a BadSample naming the URL."""
        url = self.locate(value)
        try:
            local = open_cached(url)
        except RemoteError as error:
            raise BadSample(f"cannot read {self.name} '{url}': {error.reason}") from None
        if os.path.isfile(local) and os.path.getsize(local) == 0:
            raise BadSample(f"cannot read {self.name} '{url}': empty file (0 bytes)")
        return local

    def fingerprint(self, value) -> str:
        """The file's content, not its name: an edited file misses the cache, a renamed one still hits. A remote
        object's comes from its ETag, so a cache hit downloads nothing."""
        url = self.locate(value)
        try:
            return file_fingerprint(url)
        except RemoteError as error:
            raise BadSample(f"cannot read {self.name} '{url}': {error.reason}") from None
        except OSError:
            self.encode(value)  # raises the modality's own BadSample, naming the file and the reason
            raise
