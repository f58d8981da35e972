"""The errors plait raises on purpose; the CLI prints them without a traceback."""


class PlaitError(Exception):
    """A problem the user can fix (bad config, bad data, missing file): printed as one clear message."""


class BadSample(Exception):
    """One cell of one row cannot be used; the dataset adds the file, row and column and applies the policy."""


class MissingValue(Exception):
    """A cell that is present but holds nothing usable (a clip with no audio track, silence): the dataset treats
    it exactly like an empty cell, under the input's `missing` policy."""
