#!/usr/bin/env python3
"""Open the built book in a real browser (headless Chromium) and check what a reader sees.

    python scripts/browser_test.py            # uses _build/html (build it first: `make book`)
    python scripts/browser_test.py --build    # runs the -W book build first

For the intro and every chapter listed in ``book/_toc.yml`` it serves ``_build/html`` on
127.0.0.1, loads the page in Chromium and checks that

* the page loads (HTTP 200, no JavaScript exception, no failed request to the local server);
* no execution-error report is rendered (myst-nb traceback outputs, docutils system messages);
* every equation is typeset by MathJax (served locally too), with no TeX error;
* every image in the article has loaded (``naturalWidth > 0``), and a chapter whose notebook
  has image outputs shows at least that many;
* a chapter whose notebook saved widget state renders every widget view, shows a label for
  every control that has a description (the β, τ, T sliders) and renders the captured output
  of every Output widget that holds any;
* every link to a page of the book points at a file that exists, and at an anchor that exists.

Requests to any host but 127.0.0.1 are refused (``--host-resolver-rules``), so the test also
shows that widgets render without internet; the external resources a page asked for are listed.
Screenshots go to ``_build/screenshots/``: the top of every page, and for a chapter with
widgets (or figures) a close-up of the first one.

The browser is driven over the Chrome DevTools protocol through ``--remote-debugging-pipe``,
so the script needs nothing beyond the standard library and PyYAML (a jupyter-book
dependency). It exits 0 when every page passes, 1 otherwise, 2 when it cannot run.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
HIDDEN_OUTPUT_TAGS = {"remove-output", "remove-cell", "hide-output"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    # Nothing but the local server: a page that needs the internet shows it here.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--remote-debugging-pipe",
]
VIEWPORT = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}


# --------------------------------------------------------------------------- what to expect


@dataclass
class Expected:
    """What the page of one notebook must show, read from the notebook itself."""

    images: int = 0  # image outputs of cells whose output is shown
    widget_views: int = 0  # widget views among those outputs
    labels: list[str] = field(default_factory=list)  # descriptions of the controls shown
    captured_outputs: int = 0  # Output widgets with captured output


def expected_from_notebook(path: Path) -> Expected:
    if path.suffix != ".ipynb" or not path.is_file():
        return Expected()
    nb = json.loads(path.read_text(encoding="utf-8"))
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    exp = Expected()
    roots: list[str] = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & HIDDEN_OUTPUT_TAGS:
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data and data[WIDGET_VIEW].get("model_id") in state:
                exp.widget_views += 1
                roots.append(data[WIDGET_VIEW]["model_id"])
            elif any(k.startswith("image/") for k in data):
                exp.images += 1
    # Walk from each displayed view through its children: those are what the page renders.
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        model_id = stack.pop()
        if model_id in seen or model_id not in state:
            continue
        seen.add(model_id)
        model = state[model_id]
        st = model.get("state", {})
        for value in st.values():
            for ref in value if isinstance(value, list) else [value]:
                if isinstance(ref, str) and ref.startswith("IPY_MODEL_"):
                    stack.append(ref[len("IPY_MODEL_"):])
        name = model.get("model_name", st.get("_model_name", ""))
        if name == "OutputModel" and st.get("outputs"):
            exp.captured_outputs += 1
        elif st.get("description") and name not in ("LabelModel", "HTMLModel", "OutputModel"):
            exp.labels.append(st["description"])
    return exp


def toc_pages(toc: Path) -> list[str]:
    """Document names of the toc (root first), without suffix, e.g. ``notebooks/08_x``."""
    data = yaml.safe_load(toc.read_text(encoding="utf-8"))
    pages = [data["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(data)
    return [re.sub(r"\.(md|ipynb|rst)$", "", p) for p in pages]


def source_of(doc: str) -> Path | None:
    for suffix in (".ipynb", ".md", ".rst"):
        if (ROOT / (doc + suffix)).is_file():
            return ROOT / (doc + suffix)
    return None


# --------------------------------------------------------------------------- the browser


class Chromium:
    """Chromium over the DevTools protocol on fds 3/4 (``--remote-debugging-pipe``)."""

    def __init__(self, executable: str, profile: str):
        to_child_r, self._to_child_w = os.pipe()
        self._from_child_r, from_child_w = os.pipe()
        # Move the child's ends above the range that dup2 to 3/4 could clobber.
        hi_r, hi_w = os.dup(to_child_r), os.dup(from_child_w)
        high = [fcntl_high(fd) for fd in (hi_r, hi_w)]
        for fd in (to_child_r, from_child_w, hi_r, hi_w):
            os.close(fd)

        def child_fds():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(3, 4),
            preexec_fn=child_fds,
        )
        for fd in high:
            os.close(fd)
        self._next_id = 0
        self._lock = threading.Lock()
        self._replies: dict[int, queue.Queue] = {}
        self.events: queue.Queue = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self):
        for line in iter(self.proc.stderr.readline, b""):
            self._stderr.append(line.decode(errors="replace"))
            del self._stderr[:-50]

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self._from_child_r, 1 << 16)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg and msg["id"] in self._replies:
                    self._replies[msg["id"]].put(msg)
                else:
                    self.events.put(msg)
        for q in list(self._replies.values()):
            q.put({"error": {"message": "browser closed the pipe"}})

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict:
        with self._lock:
            self._next_id += 1
            msg_id = self._next_id
            self._replies[msg_id] = queue.Queue()
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child_w, json.dumps(msg).encode() + b"\0")
        try:
            reply = self._replies[msg_id].get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{method}: no reply in {timeout:.0f} s") from None
        finally:
            self._replies.pop(msg_id, None)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def stderr_tail(self) -> str:
        return "".join(self._stderr[-15:])

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def fcntl_high(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD, 10)


class Tab:
    def __init__(self, browser: Chromium):
        self.b = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", VIEWPORT)

    def send(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        return self.b.send(method, params, session=self.session, timeout=timeout)

    def eval(self, expression: str, timeout: float = 30.0):
        res = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def drain(self) -> list[dict]:
        out = []
        while True:
            try:
                ev = self.b.events.get_nowait()
            except queue.Empty:
                return out
            if ev.get("sessionId") == self.session:
                out.append(ev)

    def navigate(self, url: str, timeout: float = 30.0) -> list[dict]:
        """Load url, wait for its load event; return the events seen meanwhile."""
        self.drain()
        self.send("Page.navigate", {"url": url})
        events, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev = self.b.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if ev.get("sessionId") != self.session:
                continue
            events.append(ev)
            if ev.get("method") == "Page.loadEventFired":
                return events
        raise RuntimeError(f"no load event for {url} within {timeout:.0f} s")

    def wait_for(self, expression: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.eval(expression):
                return True
            time.sleep(0.2)
        return False

    def screenshot(self, path: Path, clip: dict | None = None):
        params: dict = {"format": "png", "captureBeyondViewport": clip is not None}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        data = self.send("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))


# --------------------------------------------------------------------------- the checks

PAGE_FACTS = r"""
(() => {
  const article = document.querySelector('article') || document.querySelector('main') || document.body;
  const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const imgs = [...article.querySelectorAll('img')].map(i => ({
    src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0,
    inOutput: !!i.closest('.cell_output, .output'), inWidget: !!i.closest('.widget-subarea')}));
  const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  const rendered = views.filter(s => {
    const p = s.previousElementSibling;
    return p && p.classList.contains('widget-subarea') && p.childElementCount > 0 && visible(p);
  }).length;
  const labels = [...document.querySelectorAll('.widget-subarea .widget-label, .widget-subarea label')]
    .filter(visible).map(e => e.textContent.trim());
  const controls = document.querySelectorAll(
    '.widget-subarea input, .widget-subarea select, .widget-subarea .ui-slider, .widget-subarea .noUi-target, .widget-subarea .slider-container').length;
  const captured = [...document.querySelectorAll('.widget-subarea .widget-output')]
    .filter(e => e.innerText.trim().length > 0 || e.querySelector('img')).length;
  const errors = [...article.querySelectorAll('.output.traceback, .output.error, .system-message, .problematic')]
    .map(e => e.innerText.slice(0, 200));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const math = article.querySelectorAll('span.math, div.math').length;
  const typeset = article.querySelectorAll('mjx-container').length;
  const texErrors = [...article.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error') || e.textContent);
  const download = !!document.querySelector('.dropdown-download-buttons, .download-source-button');
  const launch = [...document.querySelectorAll('a[href*="mybinder.org"]')].map(a => a.href);
  return {title: document.title, imgs, views: views.length, rendered, labels, controls, captured,
          errors, links, math, typeset, texErrors, download, launch, height: document.documentElement.scrollHeight};
})()
"""

RECT_OF = r"""
((sel) => {
  const found = document.querySelector(sel);
  if (!found) return null;
  const e = found.closest('figure, .cell_output') || found;  // with its caption
  e.scrollIntoView({block: 'center'});
  const r = e.getBoundingClientRect();
  return {x: Math.max(0, r.left + window.scrollX - 16), y: Math.max(0, r.top + window.scrollY - 16),
          width: Math.min(r.width + 32, 1280), height: Math.min(r.height + 32, 1400)};
})
"""


@dataclass
class PageResult:
    doc: str
    url: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    screenshots: list[str] = field(default_factory=list)


class LinkChecker:
    def __init__(self, html_dir: Path, origin: str):
        self.html_dir, self.origin = html_dir, origin
        self._ids: dict[Path, set[str]] = {}

    def ids(self, path: Path) -> set[str]:
        if path not in self._ids:
            text = path.read_text(encoding="utf-8", errors="replace")
            self._ids[path] = set(re.findall(r"""\bid=["']([^"']+)["']""", text))
        return self._ids[path]

    def broken(self, href: str) -> str | None:
        if not href.startswith(self.origin + "/"):
            return None  # external, mailto:, javascript: ... not checked offline
        url, frag = urldefrag(href)
        rel = unquote(urlsplit(url).path).lstrip("/")
        path = self.html_dir / rel
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            return f"{rel} does not exist"
        if frag and path.suffix == ".html" and unquote(frag) not in self.ids(path):
            return f"{rel} has no anchor #{frag}"
        return None


def check_page(tab: Tab, doc: str, url: str, links: LinkChecker, shots: Path,
               index: int) -> PageResult:
    res = PageResult(doc, url)
    exp = expected_from_notebook(source_of(doc) or Path("-"))
    try:
        events = tab.navigate(url)
    except RuntimeError as exc:
        res.problems.append(str(exc))
        return res
    if exp.widget_views:
        # html-manager renders after the load event; give it time to build every view.
        ok = tab.wait_for(
            "[...document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]')]"
            ".every(s => s.previousElementSibling && s.previousElementSibling.classList.contains('widget-subarea')"
            " && s.previousElementSibling.childElementCount > 0)",
            timeout=20,
        )
        if not ok:
            res.problems.append("widget views not rendered within 20 s")
    tab.wait_for("[...document.images].every(i => i.complete)", timeout=10)
    # MathJax typesets after load too; its startup promise settles when the page is done.
    tab.wait_for(
        "!document.querySelector('span.math, div.math') || (window.MathJax && MathJax.startup"
        " && MathJax.startup.promise ? MathJax.startup.promise.then(() => true) : false)",
        timeout=20,
    )
    time.sleep(0.3)  # fonts and layout settle
    facts = tab.eval(PAGE_FACTS)
    events += tab.drain()

    # Loading: status of the document, failed local requests, JS exceptions, external hosts.
    requests: dict[str, str] = {}
    external: set[str] = set()
    for ev in events:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Network.requestWillBeSent":
            requests[p["requestId"]] = p["request"]["url"]
            if not p["request"]["url"].startswith((links.origin, "data:", "blob:", "about:")):
                external.add(p["request"]["url"])
        elif method == "Network.responseReceived":
            r = p["response"]
            local = r["url"].startswith(links.origin)
            if local and r["status"] >= 400 and not r["url"].endswith("/favicon.ico"):
                res.problems.append(f"HTTP {r['status']} for {r['url']}")
        elif method == "Network.loadingFailed":
            u = requests.get(p["requestId"], "?")
            if u.startswith(links.origin) and not p.get("canceled"):
                res.problems.append(f"request failed: {u} ({p.get('errorText')})")
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            res.problems.append(f"JavaScript exception: {str(text)[:300]}")
    if external:
        res.notes.append("refused (offline): " + ", ".join(sorted(external)))
        widget_js = [u for u in external if "jupyter-widgets" in u or "require" in u]
        if widget_js:
            res.problems.append("widget scripts requested from the network: " + ", ".join(widget_js))

    # Execution errors rendered in the page.
    for err in facts["errors"]:
        res.problems.append("error output on the page: " + err.replace("\n", " ")[:200])

    # Equations: typeset by the local MathJax, without TeX errors.
    if facts["math"] and facts["typeset"] < facts["math"]:
        res.problems.append(f"{facts['typeset']} of {facts['math']} equations typeset by MathJax")
    for err in facts["texErrors"]:
        res.problems.append(f"TeX error in an equation: {err}")

    # Images: every one loaded; notebooks' image outputs all present.
    for img in facts["imgs"]:
        if not img["ok"]:
            res.problems.append(f"image not loaded: {img['src']}")
    shown = sum(1 for i in facts["imgs"] if i["inOutput"] and not i["inWidget"])
    if shown < exp.images:
        res.problems.append(f"{shown} output images on the page, the notebook has {exp.images}")

    # Widgets.
    if exp.widget_views:
        if facts["rendered"] < exp.widget_views:
            res.problems.append(
                f"{facts['rendered']} of {exp.widget_views} widget views rendered")
        missing = [lab for lab in exp.labels if lab not in facts["labels"]]
        if missing:
            res.problems.append(f"widget controls missing: {missing} (page shows {facts['labels']})")
        if facts["controls"] == 0:
            res.problems.append("no input control inside the rendered widgets")
        if facts["captured"] < exp.captured_outputs:
            res.problems.append(
                f"{facts['captured']} of {exp.captured_outputs} captured widget outputs shown")
        res.notes.append(
            f"widgets: {facts['rendered']}/{exp.widget_views} views, controls {exp.labels}, "
            f"{facts['captured']} captured outputs")
    elif facts["views"]:
        res.notes.append(f"{facts['views']} widget views but no saved widget state in the notebook")

    # Links inside the book.
    bad = sorted({f"{href} ({why})" for href in facts["links"] if (why := links.broken(href))})
    res.problems += [f"broken link: {b}" for b in bad]

    if (source_of(doc) or Path()).suffix == ".ipynb":
        if not facts["download"]:
            res.problems.append("no download button")
        if not facts["launch"]:
            res.problems.append("no Binder launch button")
    res.notes.append(f"{len(facts['imgs'])} images, {facts['typeset']} equations, "
                     f"{len(facts['links'])} links")

    # Screenshots.
    stem = f"{index:02d}_{doc.replace('/', '_')}"
    tab.eval("window.scrollTo(0, 0)")
    tab.screenshot(shots / f"{stem}.png")
    res.screenshots.append(f"{stem}.png")
    # Close-ups: the sticky header bars would be drawn over a clip below the fold; hide them
    # (visibility keeps the layout, so the measured rectangle stays right).
    tab.eval("document.head.insertAdjacentHTML('beforeend', '<style id=\"bt-hide\">"
             ".bd-header, .bd-header-article, .skip-link, .header-article"
             " {visibility: hidden !important}</style>')")
    for kind, selector in (("widget", ".widget-subarea"), ("figure", "article .cell_output img, article figure img")):
        if kind == "widget" and not exp.widget_views:
            continue
        if kind == "figure" and exp.widget_views:
            continue
        rect = tab.eval(f"{RECT_OF}({json.dumps(selector)})")
        if rect and rect["width"] > 0 and rect["height"] > 0:
            # A close-up with some context above it (the caption / the cell that made it).
            rect["y"] = max(0, rect["y"] - 120)
            rect["height"] = rect["height"] + 120
            tab.screenshot(shots / f"{stem}-{kind}.png", clip=rect)
            res.screenshots.append(f"{stem}-{kind}.png")
    return res


# --------------------------------------------------------------------------- main


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def find_chromium(explicit: str | None) -> str | None:
    for cand in (explicit, os.environ.get("CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome"):
        if cand and (path := shutil.which(cand)):
            return path
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="store_true", help="build the book (-W) first")
    ap.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    ap.add_argument("--toc", type=Path, default=ROOT / "book" / "_toc.yml")
    ap.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "screenshots")
    ap.add_argument("--chromium", help="browser executable (default: chromium on PATH)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()

    if args.build:
        jb = Path(sys.executable).with_name("jupyter-book")
        cmd = [str(jb), "build", str(ROOT), "--toc", str(args.toc), "-W", "--keep-going"]
        print("building:", " ".join(cmd), flush=True)
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            print("browser test: the book build failed", file=sys.stderr)
            return 1
    if not (args.html / "index.html").is_file():
        print(f"browser test: no built book in {args.html} (run `make book` or pass --build)",
              file=sys.stderr)
        return 2
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("browser test: Chromium not found; install it with "
              "`apt-get install -y chromium` (Debian) or pass --chromium PATH", file=sys.stderr)
        return 2

    docs = toc_pages(args.toc)
    missing = [d for d in docs if not (args.html / f"{d}.html").is_file()]
    args.screenshots.mkdir(parents=True, exist_ok=True)
    for old in args.screenshots.glob("*.png"):
        old.unlink()
    server, origin = serve(args.html)
    links = LinkChecker(args.html, origin)
    results: list[PageResult] = []
    with tempfile.TemporaryDirectory(prefix="bincf-chromium-") as profile:
        browser = Chromium(chromium, profile)
        try:
            version = browser.send("Browser.getVersion", timeout=60)["product"]
            print(f"{version}, serving {args.html} at {origin}", flush=True)
            tab = Tab(browser)
            for i, doc in enumerate(docs):
                if doc in missing:
                    results.append(PageResult(doc, "", problems=[f"{doc}.html was not built"]))
                    continue
                url = f"{origin}/{doc}.html"
                try:
                    results.append(check_page(tab, doc, url, links, args.screenshots, i))
                except RuntimeError as exc:
                    results.append(PageResult(doc, url, problems=[f"browser: {exc}"]))
        except RuntimeError as exc:
            print(f"browser test: Chromium failed: {exc}\n{browser.stderr_tail()}",
                  file=sys.stderr)
            return 2
        finally:
            browser.close()
            server.shutdown()

    failed = [r for r in results if r.problems]
    for r in results:
        print(f"{'FAIL' if r.problems else 'ok  '} {r.doc}")
        for p in r.problems:
            print(f"       ! {p}")
        for n in r.notes:
            print(f"         {n}")
        if r.screenshots:
            print(f"         screenshots: {', '.join(r.screenshots)}")
    print(f"screenshots in {args.screenshots}; {time.monotonic() - t0:.0f} s")
    print(f"browser-test: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
