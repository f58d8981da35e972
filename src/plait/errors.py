"""The two errors plait raises on purpose; the CLI prints them without a traceback."""


class PlaitError(Exception):
    """A problem the user can fix (bad config, bad data, missing file): printed as one clear message."""


class BadSample(Exception):
    """One cell of one row cannot be used; the dataset adds the file, row and column and applies the policy."""
