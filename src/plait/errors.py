"""The errors plait raises on purpose; the CLI prints them without a traceback."""


class PlaitError(Exception):
    """A problem the user can fix (bad config, bad data, missing file): printed as one clear message."""


class BadSample(Exception):
    """One cell of one row cannot be used; the dataset adds the file, row and column and applies the policy."""


class MissingValue(Exception):
    """A cell that is present but holds nothing usable (a clip with no audio track, silence): the dataset treats
    it exactly like an empty cell, under the input's `missing` policy."""


def file_error_reason(error: Exception) -> str | None:
    """The few words for what any file reader may meet (no file, a folder, no permission); None for other errors."""
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(error, PermissionError):
        return "permission denied"
    return None


def first_line(error: Exception, limit: int = 200) -> str:
    """An error's message, first line only (or its type's name when it has none), at most `limit` characters."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:limit]
