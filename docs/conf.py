"""Sphinx configuration of incasem's documentation (MyST markdown pages, autodoc API reference).

Built by ``make docs`` with warnings as errors. Pages under ``howto/`` and ``tutorials/`` are
picked up by glob, so a new page needs no edit here or in the index.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))  # document this checkout, not an installed copy
sys.path.insert(0, str(DOCS / "_ext"))

import importlib  # noqa: E402
import inspect  # noqa: E402
import pkgutil  # noqa: E402

import incasem  # noqa: E402
from incasem import __version__  # noqa: E402


def _expose_lazy_exports() -> None:
    """Let autodoc see the names packages resolve on first use.

    A package with a module ``__getattr__`` lists its exports in ``__all__`` but not in
    ``dir()``, which is where autodoc looks for members: resolve each once here. The top-level
    package comes last, so that its own exports win over sub-package attributes of the same name.
    """
    packages = [f"incasem.{m.name}" for m in pkgutil.iter_modules(incasem.__path__) if m.ispkg]
    for name in [*packages, "incasem.torch.models", "incasem"]:
        module = importlib.import_module(name)
        if "__getattr__" in vars(module):
            for export in getattr(module, "__all__", ()):
                setattr(module, export, getattr(module, export))


_expose_lazy_exports()


def _foreign(obj) -> bool:
    """Whether ``obj`` (a class, a function, or a property's getter) comes from another package
    than incasem: re-exports such as funlib's ``Roi``."""
    for unwrap in ("fget", "__func__", "func"):
        obj = getattr(obj, unwrap, obj)
    if not (inspect.isclass(obj) or inspect.isroutine(obj)):
        return False
    module = getattr(obj, "__module__", None) or ""
    return module.split(".")[0] != "incasem"


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Members of classes incasem re-exports from other packages are theirs to document."""
    return True if what in ("class", "exception") and _foreign(obj) else None


def _point_to_foreign_docs(app, what, name, obj, options, lines):
    """A re-exported class or function: where it comes from instead of its own docstring, which
    follows its package's conventions, not ours."""
    if what in ("class", "exception", "function") and _foreign(obj):
        lines[:] = [f"Re-exported from ``{obj.__module__}.{obj.__qualname__}``."]


def setup(app):
    """Connect the autodoc handlers above."""
    app.connect("autodoc-skip-member", _skip_foreign_members)
    app.connect("autodoc-process-docstring", _point_to_foreign_docs)


project = "incasem"
author = "the incasem developers"
copyright = "the incasem developers"  # noqa: A001 (Sphinx's name)
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "incasem_cli",
    "optional_glob",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
# The public names of `incasem` are documented both where they are defined and in the package's
# public face; a short type name in a docstring then finds both, and either is right.
suppress_warnings = ["ref.python"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "alabaster"
html_title = f"incasem {release}"
html_theme_options = {
    "description": "Organelle segmentation in FIB-SEM volumes",
    "fixed_sidebar": True,
}
