"""Glob entries of toctrees that may match nothing yet.

Pages written elsewhere (a new tutorial, a how-to, ``architecture-*.md``) are picked up by glob
entries such as ``*`` after the explicitly ordered pages. Sphinx warns when a glob matches no
page, and the docs build with warnings as errors, so before a page is parsed this extension drops
the glob entries of its toctrees that match no page beyond those already listed. The same
matching rules as Sphinx's: patterns are relative to the page's folder, ``*`` stays within one
folder.
"""

from __future__ import annotations

import posixpath
import re

from sphinx.util.matching import patfilter

TOCTREE = re.compile(r"(```\{toctree\}\n)(.*?)(\n```)", re.DOTALL)
GLOB = re.compile(r"[*?\[]")


def _entries_kept(block: str, docname: str, found: set[str]) -> str:
    folder = posixpath.dirname(docname)
    lines = block.split("\n")
    listed = {
        posixpath.normpath(posixpath.join(folder, line.strip()))
        for line in lines
        if line.strip() and not line.startswith(":") and not GLOB.search(line)
    }
    remaining = found - listed - {docname}
    kept = []
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith(":") and GLOB.search(entry):
            pattern = posixpath.join(folder, entry) if folder else entry
            if not patfilter(remaining, pattern):
                continue
        kept.append(line)
    return "\n".join(kept)


def drop_empty_globs(app, docname: str, source: list[str]) -> None:
    """``source-read`` handler: rewrite the page's toctrees without globs that match nothing."""
    found = set(app.env.found_docs)
    source[0] = TOCTREE.sub(
        lambda m: m.group(1) + _entries_kept(m.group(2), docname, found) + m.group(3), source[0]
    )


def setup(app):
    """Register the handler."""
    app.connect("source-read", drop_empty_globs)
    return {"parallel_read_safe": True, "version": "1"}
