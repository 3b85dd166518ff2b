"""Sphinx configuration of the latentshape documentation (API reference and theory pages).

Build (strict, as CI does):  sphinx-build -W --keep-going -n -b html docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

# Document the checkout this file belongs to, whatever copy of latentshape is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import latentshape  # noqa: E402

project = "latentshape"
author = "latentshape developers"
copyright = "latentshape developers"
release = latentshape.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
]

# Pages are Markdown (MyST) and reStructuredText docstrings. Every Markdown file under docs/ is a
# page listed in a toctree; anything else must be excluded here explicitly.
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "images", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3  # stable anchors like theory.md#the-kernel

# -- autodoc / napoleon ---------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True}
autodoc_inherit_docstrings = False  # nn.Module's own docstrings would duplicate torch's
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- cross-references -----------------------------------------------------------------------
# Strict: every reference must resolve. The build is offline (no intersphinx inventories), so
# references *into external packages* (torch, numpy, scipy, the standard library) have no
# target; they are ignored by package prefix below. latentshape's own names are never ignored.
nitpicky = True
_EXTERNAL = r"(torch|numpy|np|scipy|matplotlib|zuko|tqdm|typing|collections|pathlib|os|threading|dataclasses|enum|abc|types)"
nitpick_ignore_regex = [
    (r"py:.*", _EXTERNAL + r"(\..+)?"),
    # torch's public aliases as they appear in annotations and napoleon type fields
    (r"py:.*", r"(Tensor|Generator|Module|Parameter|dtype|device|Size|nn\..+|optim\..+)"),
    # standard-library types written without their module in annotations
    (r"py:class", r"(Path|Hashable|Callable|Sequence|Iterable|Iterator|Mapping|Literal|Any|NamedTuple)"),
]

# -- HTML -----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"latentshape {release}"
html_static_path: list[str] = []
