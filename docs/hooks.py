"""MkDocs hook: generated references go into the pages at build time.

A page asks for a reference with a marker line (`<!-- plait: config -->`, `<!-- plait: cli -->`,
`<!-- plait: input text -->`, `<!-- plait: output caption -->`, `<!-- plait: fusion -->`); `plait.docs` writes
it from the schema and the Typer app as they are now, so the site can never show a stale reference. An unknown
marker fails the build.
"""

from mkdocs.exceptions import PluginError

from plait.docs import expand_markers
from plait.errors import PlaitError


def on_page_markdown(markdown, page, config, files):
    try:
        return expand_markers(markdown, where=page.file.src_uri)
    except PlaitError as error:
        raise PluginError(str(error)) from None
