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
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "alabaster"
html_title = f"incasem {release}"
html_theme_options = {
    "description": "Organelle segmentation in FIB-SEM volumes",
    "fixed_sidebar": True,
}
