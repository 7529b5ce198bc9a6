"""Serve the book's browser-side libraries from the book itself, not from CDNs.

myst-nb embeds each notebook's saved widget state in the page and, by default, loads RequireJS
and ``@jupyter-widgets/html-manager`` from two CDNs (``nb_ipywidgets_js``); Sphinx loads MathJax
from a third. Offline, or behind a firewall, the sliders of chapters 08-10 would render as
nothing and every equation as raw TeX. This extension

* copies ``dist/embed.js`` of the npm package ``@jupyter-widgets/html-manager`` with the fonts it
  references to ``_static/widgets/``, and MathJax 3's ``es5`` components (all but the speech
  engine) to ``_static/mathjax/``; both packages are pinned in ``package.json``, and ``npm ci``
  puts them in ``node_modules/``, which is not committed;
* runs ``npm ci`` itself when ``node_modules`` lacks them, so that the plain
  ``jupyter-book build`` command works on a fresh clone that has Node.js;
* fails the build with a clear message when the files cannot be had, and warns (an error
  under ``-W``) when ``nb_ipywidgets_js`` or ``mathjax_path`` still point at a remote URL;
* removes the duplicate inline scripts that Sphinx 7.4 writes into every page (it re-adds
  scripts registered after the builder started with ``filename or ''``, so ``None`` and ``''``
  copies both survive): the second ``const THEBE_JS_URL`` of sphinx-thebe is a SyntaxError.

* writes ``_static/widgets/mathjax3-hub-shim.js`` (see ``HUB_SHIM``), so that html-manager,
  written for MathJax 2, can typeset widget labels on the book's MathJax 3 pages.

``_config.yml`` sets ``nb_ipywidgets_js`` to the shim and ``widgets/embed.js``, and ``mathjax_path`` to
``mathjax/tex-mml-chtml.js``; Sphinx resolves both relative to ``_static/``. ``embed.js`` is
html-manager's self-contained bundle (no RequireJS): it renders the standard controls and the
Output widget, which is all the chapters use.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

# (npm package, folder inside it, folder under _static, which files of it to ship)
WIDGETS = "@jupyter-widgets/html-manager"
MATHJAX = "mathjax"


def _widget_files(rel: Path) -> bool:
    # embed.js and the fonts it loads at run time (webpack emits them beside it and resolves
    # them relative to the script's URL); not the source map nor the RequireJS builds.
    return rel.name in ("embed.js", "embed.js.LICENSE.txt") or rel.suffix in (
        ".woff2", ".woff", ".ttf", ".eot", ".svg")


def _mathjax_files(rel: Path) -> bool:
    # The component the page loads, and everything it may load on demand (TeX extensions,
    # fonts, menu, accessibility), but not the other combined bundles nor the speech engine.
    if len(rel.parts) == 1:
        return rel.name == "tex-mml-chtml.js"
    return rel.parts[0] != "sre"


# html-manager typesets widget labels with MathJax 2's API, `MathJax.Hub.Queue(["Typeset", Hub,
# element])`; MathJax 3 has no Hub, so on a page with equations every label throws a TypeError.
# Loaded before embed.js (see nb_ipywidgets_js in _config.yml), this adds a Hub that forwards to
# MathJax 3. It attaches on `load` because the MathJax object only exists once MathJax 3 has
# started (its script is deferred); embed.js renders on `load` too, and registers later.
HUB_SHIM_NAME = "mathjax3-hub-shim.js"
HUB_SHIM = """\
// Written by book/_ext/local_assets.py: MathJax 2's Hub.Queue for html-manager, on MathJax 3.
window.addEventListener("load", function () {
  var mj = window.MathJax;
  if (!mj || mj.Hub || !mj.typesetPromise) return;
  mj.Hub = {
    Queue: function (job) {
      var element = Array.isArray(job) ? job[2] : undefined;
      if (!element) return;
      var ready = mj.startup && mj.startup.promise ? mj.startup.promise : Promise.resolve();
      ready.then(function () { return mj.typesetPromise([element]); }).catch(function (err) {
        console.warn("MathJax could not typeset a widget label", err);
      });
    },
  };
});
"""

ASSETS = [
    (WIDGETS, "dist", "widgets", _widget_files),
    (MATHJAX, "es5", "mathjax", _mathjax_files),
]


def _repo_root(app: Sphinx) -> Path:
    """The folder holding package.json: the source dir or one of its parents."""
    for folder in (Path(app.srcdir), *Path(app.srcdir).parents):
        if (folder / "package.json").is_file():
            return folder
    raise ExtensionError(f"local_assets: no package.json in {app.srcdir} or above")


def _missing(root: Path) -> list[str]:
    return [pkg for pkg, sub, _, _ in ASSETS
            if not (root / "node_modules" / pkg / sub).is_dir()
            or not (root / "node_modules" / pkg / "package.json").is_file()]


def _ensure_installed(app: Sphinx) -> Path:
    root = _repo_root(app)
    missing = _missing(root)
    if missing:
        npm = shutil.which("npm")
        if npm is None:
            raise ExtensionError(
                f"local_assets: {', '.join(missing)} not in {root / 'node_modules'} and npm is "
                "not on PATH. Install Node.js and run `npm ci` in the repository root "
                "(`make book` does)."
            )
        logger.info("local_assets: %s missing, running `npm ci` in %s", ", ".join(missing), root)
        cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        if done.returncode != 0 or _missing(root):
            raise ExtensionError(
                f"local_assets: `npm ci` in {root} failed (exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
    return root / "node_modules"


def _is_remote(path: str) -> bool:
    return "://" in path or path.startswith("//")


def _check_config(app: Sphinx) -> None:
    js = getattr(app.config, "nb_ipywidgets_js", None) or {}
    remote = [path for path in js if _is_remote(path)]
    if remote:
        logger.warning(
            "local_assets: nb_ipywidgets_js loads %s from the network; set it to "
            '{"widgets/embed.js": {}} in _config.yml so widgets render offline',
            ", ".join(remote),
        )
    mathjax = getattr(app.config, "mathjax_path", "") or ""
    if _is_remote(mathjax):
        logger.warning(
            "local_assets: mathjax_path loads %s from the network; set it to "
            "mathjax/tex-mml-chtml.js in _config.yml so equations render offline",
            mathjax,
        )


def _builder_inited(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    _check_config(app)
    # Copied before the pages are written, so that Sphinx adds the files' checksums (?v=...)
    # to their URLs: a new version of a package is never served from a reader's cache.
    _copy_files(app, _ensure_installed(app))


def _copy_files(app: Sphinx, modules: Path) -> None:
    for pkg, sub, target_name, wanted in ASSETS:
        source = modules / pkg / sub
        target = Path(app.builder.outdir) / "_static" / target_name
        copied = 0
        for src in sorted(source.rglob("*")):
            rel = src.relative_to(source)
            if src.is_file() and wanted(rel):
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target / rel)
                copied += 1
        logger.info("local_assets: copied %d files of %s %s to %s",
                    copied, pkg, _installed_version(modules / pkg), target)
    shim = Path(app.builder.outdir) / "_static" / "widgets" / HUB_SHIM_NAME
    shim.write_text(HUB_SHIM, encoding="utf-8")


def _dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict,
                    doctree) -> None:
    """Drop the second copy of an inline script (Sphinx 7.4 adds None- and ''-named twins)."""
    files = getattr(app.builder, "_js_files", None)
    if not files:
        return
    seen, kept = set(), []
    for js in files:
        key = (getattr(js, "filename", js) or "", getattr(js, "priority", 0),
               tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    files[:] = kept


def _installed_version(package_dir: Path) -> str:
    import json

    try:
        return json.loads((package_dir / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "(version unknown)"


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
