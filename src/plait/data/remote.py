"""Remote files (`s3://` and any other fsspec URL): the storage settings, whole-object reads that survive
transient failures, and a download cache so that each version of an object crosses the network once.

Why one module-level setting: features open files deep inside encoding, on worker threads, far from the config.
`configure(config.data.storage, config.data.cache_dir)` is called where a run builds its preprocessor
(`runs.make_preprocessor`, used by train, cache build, evaluate and predict) and everything here reads it. With
no call, the defaults hold: AWS settings from the environment and ~/.aws, 5 attempts per read.

Why plait retries on top of s3fs and botocore, which already retry single requests: their loops cover one
request at a time, and one lost file can stop hours of preprocessing. plait's loop repeats the whole read (HEAD,
download, size check), so a failure that outlasts theirs, or one they do not count as transient (a body cut
short once their retries are spent, a truncated download), is tried again after an exponential back-off with
jitter. What retrying cannot fix (no such object or bucket, access denied, no credentials) fails at once with
the URL and the reason.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, TypeVar

import fsspec

from plait.data.cache_folder import cache_folder, digest
from plait.errors import PlaitError
from plait.files import atomic_path

T = TypeVar("T")
BACKOFF_BASE_S = 0.2  # the wait after the first failed attempt, doubled after each further one
BACKOFF_CAP_S = 5.0
LOCAL_PROTOCOLS = ("file", "local")
# S3 error codes (and HTTP statuses, which botocore gives as the code of a bodiless reply) that pass with time
TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
                   "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable",
                   "408", "429", "500", "502", "503", "504"}
DENIED_CODES = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}


class RemoteError(PlaitError, OSError):
    """A remote file that cannot be read: the message names the URL and the reason. Also an OSError, so code
    that handles unreadable files (the bad-sample policy, the cache's prefetch) handles remote ones alike."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: {reason}")
        self.url, self.reason = url, reason


class IncompleteDownload(OSError):
    """Fewer bytes arrived than the object holds: a transient failure, retried."""


@dataclass(frozen=True)
class Storage:
    """The resolved `data.storage` settings (see `StorageConfig` in config.py) and the cache folder."""

    endpoint_url: str | None = None
    profile: str | None = None
    anonymous: bool = False
    retries: int = 5
    options: dict = field(default_factory=dict)
    cache_dir: str | None = None


_storage = Storage()


def configure(storage=None, cache_dir: str | None = None) -> None:
    """Set this process's storage settings: `storage` is a `StorageConfig` (None: the defaults)."""
    global _storage
    _storage = Storage(**(storage.model_dump() if storage is not None else {}), cache_dir=cache_dir)


def protocol(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def storage_options(url: str) -> dict:
    """The fsspec keyword arguments for `url`. For `s3://`: the endpoint from the config, else
    $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL; credentials from the config's profile, else the AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN variables, else $AWS_PROFILE, else botocore's own chain (instance
    role, ...). Resolved on every call, so changed variables take effect (fsspec keys its cached filesystems by
    these options). `storage.options` is added last and wins."""
    options: dict = {}
    if protocol(url) in ("s3", "s3a"):
        env = os.environ
        endpoint = _storage.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
        if _storage.anonymous:
            options["anon"] = True
        elif _storage.profile:
            options["profile"] = _storage.profile
        elif env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            options.update(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"], token=env.get("AWS_SESSION_TOKEN"))
        elif env.get("AWS_PROFILE"):
            options["profile"] = env["AWS_PROFILE"]
    return {**options, **_storage.options}


def filesystem(url: str):
    """(filesystem, path inside it) for `url`, with this process's storage options."""
    return fsspec.core.url_to_fs(url, **storage_options(url))


def is_remote(url: str) -> bool:
    """Whether `url` names something other than a local file (`s3://`, `gs://`, `memory://`, ...)."""
    return "://" in url and protocol(url) not in LOCAL_PROTOCOLS


def local_form(url: str) -> str:
    """A local path or `file://` URL → a plain path."""
    return url.split("://", 1)[1] if "://" in url else url


# --- retries ---------------------------------------------------------------------------------------------------

def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): doubling from BACKOFF_BASE_S, capped, with jitter
    (half to all of it) so that many readers throttled together do not come back together."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def causes(error: BaseException | None):
    """`error` and what it was raised from (s3fs turns botocore's errors into OSErrors raised from them). Only
    explicit causes: an error merely raised while another was being handled says nothing about this one."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__


def error_codes(error: BaseException) -> list[str]:
    """The S3 error code and HTTP status an error carries (`NoSuchKey`, `404`; `SlowDown`, `503`), if any."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        found = (response.get("Error", {}).get("Code"), response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        return [str(code) for code in found if code]
    match = re.search(r"An error occurred \((\w+)\)", str(error))  # an s3fs OSError that dropped its cause
    return [match.group(1)] if match else []


def describe(error: BaseException) -> str:
    """The error in one line, led by its S3 code when it has one (`SlowDown: Please reduce your request rate.`)."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    text = re.sub(r"^\[Errno \d+\] ", "", text)
    code = next((codes[0] for codes in map(error_codes, causes(error)) if codes), None)
    if code and code not in text:
        text = f"{'HTTP ' if code.isdigit() else ''}{code}: {text}"
    return text[:300]


def transient_types() -> tuple[type, ...]:
    """Exception types that say nothing about the object itself: the network, a timeout, a cut-off reply."""
    import asyncio

    import aiohttp
    import botocore.exceptions as boto
    from fsspec.exceptions import FSTimeoutError

    return (ConnectionError, TimeoutError, asyncio.TimeoutError, FSTimeoutError, IncompleteDownload, aiohttp.ClientError,
            boto.HTTPClientError, boto.ConnectionError, boto.IncompleteReadError)


def permanent_reason(error: BaseException) -> str | None:
    """Why retrying cannot help, or None when it may: connection errors, timeouts, throttling, HTTP 5xx, and any
    other OSError (s3fs wraps transient failures in plain OSErrors)."""
    chain = list(causes(error))
    codes = [code for cause in chain for code in error_codes(cause)]
    if any(code in TRANSIENT_CODES or (code.isdigit() and int(code) >= 500) for code in codes):
        return None
    if "NoSuchBucket" in codes:
        return "no such bucket"
    if any(code in ("NoSuchKey", "404") for code in codes) or any(isinstance(c, FileNotFoundError) for c in chain):
        return "no such file"
    denied = next((c for c in chain if isinstance(c, PermissionError) or DENIED_CODES & set(error_codes(c))), None)
    if denied is not None:
        return f"access denied ({describe(denied)})"
    if any(isinstance(c, (IsADirectoryError, NotADirectoryError)) for c in chain):
        return "is a folder, not a file"
    if any(code.isdigit() and 400 <= int(code) < 500 for code in codes):
        return describe(error)
    if isinstance(error, OSError) or any(isinstance(c, transient_types()) for c in chain):
        return None
    return describe(error)


def retrying(url: str, action: Callable[[], T]) -> T:
    """`action()`, repeated on transient failures up to `storage.retries` attempts in all; any failure that
    remains becomes a RemoteError naming `url`."""
    attempts, attempt = max(1, _storage.retries), 1
    while True:
        try:
            return action()
        except RemoteError:
            raise  # already final: an inner read retried it
        except Exception as error:
            reason = permanent_reason(error)
            if reason is not None:
                raise RemoteError(url, reason) from error
            if attempt == attempts:
                tried = f"gave up after {attempts} attempts" if attempts > 1 else "failed"
                raise RemoteError(url, f"{tried}: {describe(error)}") from error
        time.sleep(backoff(attempt))
        attempt += 1


# --- reading ---------------------------------------------------------------------------------------------------

def head(url: str) -> dict:
    """The object's metadata (size, ETag, ...), asked of the store afresh (one HEAD request for S3)."""
    fs, path = filesystem(url)
    fs.invalidate_cache(path)  # a listing cached earlier would hide a changed ETag
    info = fs.info(path)
    if info.get("type") == "directory":
        raise IsADirectoryError(url)
    return info


def version_of(info: dict) -> str:
    """What changes when the object does: its ETag; without one, its size and modification time."""
    tag = info.get("ETag") or info.get("etag")
    if tag:
        return f"etag {tag} size {info.get('size')}"
    stamp = next((info[k] for k in ("LastModified", "mtime", "updated", "last_modified", "created") if info.get(k)), None)
    return f"size {info.get('size')} modified {stamp}"


def fingerprint(url: str) -> str:
    """A cache key for the content of a remote object, from one HEAD request: nothing is downloaded. An S3 ETag
    is a digest of the content, so a copy under another key shares cache entries; other stores' tags (an HTTP
    server's may be its modification time and size) only mean something together with the URL."""
    info = retrying(url, lambda: head(url))
    version = version_of(info)
    content_tag = version.startswith("etag") and protocol(url) in ("s3", "s3a")
    return digest("remote", version) if content_tag else digest("remote", url, version)


def downloads_folder() -> Path:
    return cache_folder(_storage.cache_dir) / "downloads"


def open_cached(url: str) -> str:
    """A local path holding the file at `url`. A local path (or `file://` URL) comes back as it is; a remote
    object is downloaded once into `<cache folder>/downloads/`, under a name made from the URL and the object's
    version (ETag), so a later call costs one HEAD request and a changed object is fetched again. Downloads go
    to a temporary name and are renamed into place, so a killed or concurrent download never leaves a partial
    file under the final name."""
    if not is_remote(url):
        return local_form(url)
    fs, path = filesystem(url)

    def fetch() -> str:
        info = head(url)
        target = downloads_folder() / f"{digest(url, version_of(info))}{PurePosixPath(path).suffix[:16]}"
        if target.is_file():
            return str(target)
        with atomic_path(target) as temporary:
            fs.get_file(path, str(temporary))
            received, expected = temporary.stat().st_size, info.get("size")
            if expected is not None and received != expected:
                raise IncompleteDownload(f"received {received} of {expected} bytes")
        return str(target)

    return retrying(url, fetch)


def read_bytes(url: str) -> bytes:
    """The whole file at `url`: a local one read directly, a remote one fetched (with retries) into memory and
    not kept on disk; for small files read once, such as a dataset's CSV of captions."""
    if not is_remote(url):
        return Path(local_form(url)).read_bytes()
    fs, path = filesystem(url)
    return retrying(url, lambda: fs.cat_file(path))


def read_text(url: str) -> str:
    """A small text file (a dataset's CSV or JSON) as text: UTF-8 with or without a byte-order mark, else cp1252,
    the encoding of CSVs saved by Excel on Windows (the published MELD CSVs among them)."""
    raw = read_bytes(url)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def file_fingerprint(path: str) -> str:
    """The fingerprint of a file's content. A remote object's comes from its ETag (one HEAD request), so a cache
    hit downloads nothing; a local file's bytes are hashed."""
    if is_remote(path):
        return fingerprint(path)
    hasher = hashlib.blake2b(digest_size=16)
    with fsspec.open(path, "rb") as handle:
        while chunk := handle.read(4 * 2**20):
            hasher.update(chunk)
    return hasher.hexdigest()
