"""Open a few of a column's files to confirm what their suffix says (and whether a video has a sound track)."""

from __future__ import annotations

from dataclasses import dataclass


PLURAL = {"image": "images", "video": "videos", "audio": "audio files", "sequence": "arrays"}


@dataclass
class Probed:
    summary: str  # "3 of 3 probed open as images"
    opened: int = 0
    smallest_side: int | None = None  # of the probed images
    has_audio: bool = False  # every probed video that opened has a sound track


def probe_files(media: str, paths: list[str]) -> Probed:
    from plait.data.remote import open_cached

    opened, missing, audio, sides = 0, 0, 0, []
    for path in paths:
        try:
            found = open_media(media, open_cached(path) if "://" in path else path)  # a remote file: fetched once
            audio += found is True
            sides += [min(found)] if isinstance(found, tuple) else []
            opened += 1
        except FileNotFoundError:
            missing += 1
        except Exception:  # noqa: BLE001  (any failure to decode only counts against the suffix's word)
            pass
    parts = [f"{opened} of {len(paths)} probed open as {PLURAL[media]}"]
    if missing:
        parts.append(f"{missing} not found (paths resolve against the table's folder)")
    if media == "video" and opened:
        parts.append(f"{audio} with a sound track")
    return Probed("; ".join(parts), opened, min(sides) if sides else None,
                  has_audio=media == "video" and opened > 0 and audio == opened)


def open_media(media: str, path: str) -> bool | tuple[int, int]:
    """Opens the file as `media` (raising when it cannot): an image's size, else whether it holds a sound track."""
    if media == "image":
        from PIL import Image

        with Image.open(path) as image:
            image.verify()
            return image.size
    if media == "sequence":
        from plait.data.arrays import load_array_file

        load_array_file(path)
        return False
    import av

    with av.open(path) as container:
        if media == "video" and not container.streams.video:
            raise ValueError("no video stream")
        if media == "audio" and not container.streams.audio:
            raise ValueError("no audio stream")
        return bool(container.streams.audio)
