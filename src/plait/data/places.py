"""Where each row of a table came from, as a user finds it: the file to open and the line (or row, or entry) in it.

Messages about a bad cell and the records of `skipped.jsonl` name a row by its place, never by its position in
the joined table: the third line of MELD's `test_sent_emo.csv` is `test_sent_emo.csv, line 4` (line 1 is the
header), not row 52 of the three CSVs read as one. Line numbers of a CSV are counted with the csv module on the
first question, so quoted cells that span lines are counted right and a table with no bad row costs nothing.
"""

from __future__ import annotations

import csv
import io
from bisect import bisect_right
from dataclasses import dataclass, field

from plait.data import remote

LINE_KINDS = ("csv", "jsonl")


@dataclass
class Segment:
    """Consecutive table rows read from one file (or one row per file, or a label per row)."""

    start: int  # the first table position this segment holds
    file: str
    kind: str = "row"  # csv | jsonl (a line number), row (a row number in the file), labels (a place per row)
    labels: list[tuple[str, str]] | None = None  # kind labels: (file, place) per row
    separator: str = ","
    lines: list[int] | None = field(default=None, repr=False)  # counted on the first question

    def place(self, offset: int) -> tuple[str, str]:
        if self.kind == "labels":
            return self.labels[offset]
        if self.kind in LINE_KINDS:
            lines = self.line_numbers()
            if offset < len(lines):
                return self.file, f"line {lines[offset]}"
        return self.file, f"row {offset}"  # also when the lines could not be counted: a row number is still true

    def line_numbers(self) -> list[int]:
        if self.lines is None:
            try:
                text = remote.read_text(self.file)
                self.lines = csv_lines(text, self.separator) if self.kind == "csv" else jsonl_lines(text)
            except Exception:  # naming a bad row must never fail in its turn (an unreadable file, a CSV pandas reads
                self.lines = []  # and the csv module does not): the row number then stands in for the line
        return self.lines


def csv_lines(text: str, separator: str = ",") -> list[int]:
    """The line each data record of a CSV starts on (1-based; the header is line 1; blank lines skipped, as pandas
    skips them)."""
    limit = csv.field_size_limit(2**31 - 1)  # pandas reads cells of any size; so must the count
    try:
        reader = csv.reader(io.StringIO(text, newline=None), delimiter=separator)  # a lone \r ends a line, as for pandas
        starts, before, header = [], 0, True
        for record in reader:
            if record and not (len(record) == 1 and not record[0].strip()):  # pandas skips blank and all-space lines
                if not header:
                    starts.append(before + 1)
                header = False
            before = reader.line_num
        return starts
    finally:
        csv.field_size_limit(limit)


def jsonl_lines(text: str) -> list[int]:
    """The line of each JSON record: lines end at \n alone (U+2028 and the like may sit inside a JSON string)."""
    return [number for number, line in enumerate(text.split("\n"), start=1) if line.strip()]


class RowPlaces:
    """Table position → (file, place in it). Without segments every row is `row N` of `source`."""

    def __init__(self, source: str, segments: list[Segment] | None = None):
        self.source = source
        self.segments = segments or [Segment(0, source)]
        self.starts = [segment.start for segment in self.segments]

    @classmethod
    def of_file(cls, url: str, kind: str, separator: str = ",") -> "RowPlaces":
        counted = kind in LINE_KINDS and len(separator) == 1  # pandas takes a regex separator; the csv module cannot
        return cls(url, [Segment(0, url, kind if counted else "row", separator=separator)])

    @classmethod
    def of_labels(cls, source: str, labels: list[tuple[str, str]]) -> "RowPlaces":
        return cls(source, [Segment(0, source, "labels", labels=labels)])

    @classmethod
    def of_files(cls, source: str, paths: list[str]) -> "RowPlaces":
        """One row per file (a folder of photos or pickles): the file is the place."""
        return cls.of_labels(source, [(str(path), "") for path in paths])

    @classmethod
    def of(cls, places: "RowPlaces | str") -> "RowPlaces":
        """`places` as they are, or a table's name whose rows are `row N`."""
        return cls(places) if isinstance(places, str) else places

    def place(self, position: int) -> tuple[str, str]:
        segment = self.segments[max(bisect_right(self.starts, position) - 1, 0)]
        return segment.place(position - segment.start)

    def describe(self, position: int) -> str:
        """`FILE, line N` (or `row N`, an entry such as `annotations[3]`, or the file alone)."""
        file, place = self.place(position)
        return f"{file}, {place}" if place else file


def joined(parts: list[tuple[int, RowPlaces]], source: str) -> RowPlaces:
    """The places of tables stacked one after another: (rows of the table, its places) in order."""
    segments, start = [], 0
    for rows, places in parts:
        for segment in places.segments:
            segments.append(Segment(start + segment.start, segment.file, segment.kind, segment.labels, segment.separator))
        start += rows
    return RowPlaces(source, segments)
