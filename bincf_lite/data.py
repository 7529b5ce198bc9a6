"""Implicit-feedback data: loading, the iterative k-core filter, splits and negatives (chapter 01).

The protocol every number of the book follows (DESIGN §3):

* every rating is a positive (implicit feedback, paper §5.1);
* users and items with fewer than 20 interactions are removed, **repeated until nothing
  changes** (:func:`kcore_filter`); on ML-1M this gives the paper's Table 1 exactly:
  6,022 users, 3,043 items, 995,154 interactions;
* per user, a random half of the positives is the test set; a share of the other half is the
  validation set (:func:`split_interactions`).

Data never ships with the project (MovieLens' licence forbids redistribution):
:func:`locate_dataset` looks in the directories it is given, then in the cache, then downloads
the official GroupLens archive and verifies its checksums.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "DataError",
    "DATASETS",
    "Interactions",
    "Split",
    "default_cache_dir",
    "locate_dataset",
    "download_archive",
    "read_interactions",
    "read_movielens",
    "read_yelp",
    "load_ratings",
    "load_dataset",
    "kcore_filter",
    "split_interactions",
    "sample_negatives",
    "synthetic_interactions",
    "load_item_titles",
]


class DataError(ValueError):
    """A data file is missing, malformed or unusable; the message says which and why."""


@dataclass(frozen=True)
class Archive:
    """An official dataset archive and the ratings file inside it."""

    name: str
    url: str
    size: int | None
    md5: str
    sha256: str
    folder: str  # folder inside the archive (and inside a data directory)
    files: tuple[str, ...]  # candidate ratings files, first match wins
    titles: str | None = None  # file with item titles, if any


#: The datasets the loader knows by name (DESIGN §5). Yelp is read from a path the user gives.
DATASETS: dict[str, Archive] = {
    "ml-100k": Archive(
        "ml-100k",
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        4_924_029,
        "0e33842e24a9c977be4e0107933c0723",
        "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        "ml-100k",
        ("u.data",),
        "u.item",
    ),
    "ml-1m": Archive(
        "ml-1m",
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        None,
        "c4d9eecfca2ab87c1945afe126590906",
        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        "ml-1m",
        ("ratings.dat", "ratings_uir.dat"),
        "movies.dat",
    ),
    "ml-10m": Archive(
        "ml-10m",
        "https://files.grouplens.org/datasets/movielens/ml-10m.zip",
        65_566_137,
        "ce571fd55effeba0271552578f2648bd",
        "813c411ccb6122564edfe752e7f80c4dcc5aa25fa94c93622f6877a7ba252862",
        "ml-10M100K",
        ("ratings.dat",),
        "movies.dat",
    ),
}


# --------------------------------------------------------------------------------------------
# Locating and downloading


def default_cache_dir() -> Path:
    """Where downloads are cached: the project's ``data/cache`` in a source checkout, else
    ``~/.cache/bincf_lite``."""
    project_data = Path(__file__).resolve().parent.parent / "data"
    if project_data.is_dir():
        return project_data / "cache"
    return Path.home() / ".cache" / "bincf_lite"


def _find_in(directory: Path, archive: Archive) -> Path | None:
    for sub in (directory / archive.folder, directory):
        for name in archive.files:
            if (sub / name).is_file():
                return sub / name
    return None


def locate_dataset(
    name: str,
    data_dirs: Iterable[str | os.PathLike | None] = (),
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = False,
) -> Path:
    """Path of the ratings file of dataset ``name``.

    Looks, in order, in each of ``data_dirs`` (the caller passes an explicit argument and the
    ``BINCF_DATA_DIR`` setting here), in the cache, and finally downloads the official archive
    into the cache when ``download`` is true. Raises :class:`DataError` naming the file expected,
    every place looked at, and the URL when the data cannot be found.
    """
    archive = _archive(name)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    looked = []
    for d in [*data_dirs, cache]:
        if d is None or str(d) == "":
            continue
        d = Path(d).expanduser()
        looked.append(str(d))
        if d.is_file():
            raise DataError(f"{d} is a file; a data directory holding {archive.folder}/ is expected")
        hit = _find_in(d, archive)
        if hit is not None:
            return hit
    if download:
        try:
            download_archive(name, cache, progress=progress)
        except OSError as exc:  # URLError is an OSError
            raise DataError(
                f"{name}: no {' or '.join(archive.files)} found in {', '.join(looked) or 'nowhere'}"
                f", and downloading {archive.url} failed ({exc}). Download it by hand and unzip it"
                f" into a directory given by --data-dir or BINCF_DATA_DIR."
            ) from exc
        hit = _find_in(cache, archive)
        if hit is not None:
            return hit
    raise DataError(
        f"{name}: expected {archive.folder}/{' or '.join(archive.files)} but found it in none of:"
        f" {', '.join(looked) or '(no directory given)'}. Get {archive.url} and unzip it into a"
        f" directory given by --data-dir or BINCF_DATA_DIR."
    )


def _archive(name: str) -> Archive:
    if name not in DATASETS:
        known = ", ".join([*DATASETS, "yelp"])
        raise DataError(f"unknown dataset {name!r}; known datasets: {known}, or a file path")
    return DATASETS[name]


def _digests(path: Path) -> tuple[str, str]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def download_archive(
    name: str,
    cache_dir: str | os.PathLike,
    url: str | None = None,
    progress: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download, verify and extract the official archive of ``name`` into ``cache_dir``.

    The download goes to a temporary file that is renamed only once its md5 and sha256 match
    DESIGN §5, so an interrupted or corrupted download never leaves a half file behind. The
    extraction refuses members that would land outside ``cache_dir``. ``url`` overrides the
    official address (tests serve a zip from 127.0.0.1).
    """
    archive = _archive(name)
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{archive.name}.zip"
    if not target.is_file():
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{archive.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(
                url or archive.url, timeout=timeout
            ) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                bar = _progress(total, f"download {archive.name}", progress)
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
                bar.close()
            md5, sha = _digests(Path(tmp))
            if (md5, sha) != (archive.md5, archive.sha256):
                raise DataError(
                    f"checksum mismatch for {url or archive.url}: got md5 {md5}, sha256 {sha};"
                    f" expected md5 {archive.md5}, sha256 {archive.sha256}. The file was not kept."
                )
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    _safe_extract(target, cache)
    return cache / archive.folder


def _safe_extract(zip_path: Path, dest: Path) -> None:
    root = dest.resolve()
    with zipfile.ZipFile(zip_path) as zf:
        for member in zf.infolist():
            out = (dest / member.filename).resolve()
            if not out.is_relative_to(root):
                raise DataError(f"{zip_path}: member {member.filename!r} would escape {dest}")
        staging = Path(tempfile.mkdtemp(dir=dest, prefix=".extract."))
        try:
            zf.extractall(staging)
            for top in staging.iterdir():
                final = dest / top.name
                if final.exists():
                    shutil.rmtree(final) if final.is_dir() else final.unlink()
                os.replace(top, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _progress(total, desc, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=not enabled)


# --------------------------------------------------------------------------------------------
# Reading files


def _read_text(path: str | os.PathLike, encoding: str = "latin-1") -> tuple[Path, str]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected an interactions file")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty, expected one interaction per line")
    if b"\x00" in raw[:8192]:
        raise DataError(f"{path}: looks like a binary file, expected text with one interaction per line")
    return path, raw.decode(encoding)


def _parse_lines(
    path: Path, text: str, sep: str, min_fields: int, names: Sequence[str], skip_header: bool
) -> tuple[pd.DataFrame, list[int]]:
    """Split ``text`` into columns with a clear error for the first bad line.

    Returns the frame and the file line number of each of its rows (kept out of
    ``frame.attrs``, which pandas deep-copies on every operation)."""
    lines = text.splitlines()
    start = 0
    if skip_header and lines and not _is_number(lines[0].split(sep)[-1].strip()):
        first = [f.strip().lower() for f in lines[0].split(sep)]
        if any(f in {"user", "user_id", "userid", "item", "item_id", "itemid"} for f in first):
            start = 1
    body = "\n".join(lines[start:])
    if len(sep) > 1:
        body = body.replace(sep, "\t")
    try:
        frame = pd.read_csv(
            io.StringIO(body),
            sep=sep if len(sep) == 1 else "\t",
            header=None,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=True,
            engine="c",
        ).fillna("")
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: {exc} (expected fields separated by {sep!r})") from exc
    nonblank = [i for i, line in enumerate(lines[start:], start=start + 1) if line.strip()]
    if frame.shape[1] < min_fields or (frame.iloc[:, : min_fields] == "").any(axis=None):
        if frame.shape[1] < min_fields:
            bad = 0
        else:
            bad = int(np.flatnonzero((frame.iloc[:, :min_fields] == "").any(axis=1).to_numpy())[0])
        lineno = nonblank[bad] if bad < len(nonblank) else start + 1
        shown = lines[lineno - 1][:80]
        raise DataError(
            f"{path}, line {lineno}: expected at least {min_fields} fields separated by {sep!r}"
            f" ({', '.join(names[:min_fields])}), got {shown!r}"
        )
    frame = frame.iloc[:, : len(names)]
    frame.columns = list(names[: frame.shape[1]])
    return frame, nonblank


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _finish(frame: pd.DataFrame, lines: list[int], path: Path, has_rating: bool) -> pd.DataFrame:
    out = pd.DataFrame({"user": frame["user"].str.strip(), "item": frame["item"].str.strip()})
    if has_rating and "rating" in frame:
        rating = pd.to_numeric(frame["rating"].str.strip(), errors="coerce")
        bad = np.flatnonzero(rating.isna().to_numpy())
        if len(bad):
            lineno = lines[bad[0]]
            raise DataError(
                f"{path}, line {lineno}: rating {frame['rating'].iloc[bad[0]]!r} is not a number"
            )
        out["rating"] = rating.astype(np.float32).to_numpy()
    else:
        out["rating"] = np.float32(1.0)
    return out


def read_interactions(path: str | os.PathLike, sep: str | None = None) -> pd.DataFrame:
    """Read any interactions file: ``user<TAB>item[<TAB>rating]`` (or CSV with commas).

    User and item ids are kept as opaque strings. The separator is a tab unless the file ends in
    ``.csv`` or ``sep`` says otherwise; a header line naming the columns is skipped. Returns a
    DataFrame with columns ``user, item, rating`` (rating 1 when the file has none).
    """
    path, text = _read_text(path, encoding="utf-8")
    if sep is None:
        sep = "," if path.suffix.lower() == ".csv" else "\t"
    frame, lines = _parse_lines(path, text, sep, 2, ("user", "item", "rating"), skip_header=True)
    return _finish(frame, lines, path, has_rating=True)


def read_movielens(path: str | os.PathLike) -> pd.DataFrame:
    """Read a MovieLens ratings file: ``u.data`` (tab), ``ratings.dat`` (``::``, 4 columns,
    ML-1M or ML-10M with half stars) or ``ratings_uir.dat`` (``::``, 3 columns)."""
    path, text = _read_text(path)
    sep = "\t" if path.name == "u.data" else "::"
    frame, lines = _parse_lines(path, text, sep, 3, ("user", "item", "rating", "timestamp"), False)
    return _finish(frame, lines, path, has_rating=True)


def read_yelp(path: str | os.PathLike) -> pd.DataFrame:
    """Read Yelp Open Dataset reviews (JSON lines with ``user_id``, ``business_id``, ``stars``).

    Yelp's terms require a manual download; give the path of
    ``yelp_academic_dataset_review.json``.
    """
    path, text = _read_text(path, encoding="utf-8")
    users, items, stars = [], [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            users.append(str(rec["user_id"]))
            items.append(str(rec["business_id"]))
            stars.append(float(rec.get("stars", 1.0)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{path}, line {lineno}: expected a JSON object with user_id, business_id and"
                f" stars ({exc.__class__.__name__}: {exc})"
            ) from exc
    return pd.DataFrame(
        {"user": users, "item": items, "rating": np.asarray(stars, dtype=np.float32)}
    )


def load_ratings(
    name: str,
    data_dirs: Iterable[str | os.PathLike | None] = (),
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Raw ratings of a dataset given by name (``ml-100k``, ``ml-1m``, ``ml-10m``) or by path.

    A path is read as Yelp reviews when it ends in ``.json``, as a MovieLens file when its name
    is one of MovieLens', and as an interactions file otherwise.
    """
    if name not in DATASETS:
        path = Path(name)
        if name == "yelp":
            raise DataError(
                "yelp needs the path of yelp_academic_dataset_review.json (the Yelp Open Dataset"
                " is downloaded by hand under Yelp's terms)"
            )
        if not (path.suffix or path.exists() or os.sep in name):
            _archive(name)  # raises the unknown-dataset error
        if path.suffix.lower() == ".json":
            return read_yelp(path)
        if path.name in {"u.data", "ratings.dat", "ratings_uir.dat"}:
            return read_movielens(path)
        return read_interactions(path)
    return read_movielens(locate_dataset(name, data_dirs, cache_dir, download, progress))


# --------------------------------------------------------------------------------------------
# Interactions, filtering, splits


@dataclass(frozen=True)
class Interactions:
    """Positive interactions with dense integer ids and the original ids kept.

    ``users[k]`` / ``items[k]`` are row / column indices of interaction ``k``;
    ``user_ids[u]`` / ``item_ids[i]`` the original (string) ids.
    """

    users: np.ndarray
    items: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    filter_rounds: tuple = field(default=(), compare=False)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, filter_rounds: tuple = ()) -> Interactions:
        """Encode a ``user, item[, rating]`` frame; duplicate pairs count once."""
        frame = frame.drop_duplicates(["user", "item"])
        if len(frame) == 0:
            raise DataError("no interactions left")
        u_codes, user_ids = pd.factorize(frame["user"].astype(str), sort=False)
        i_codes, item_ids = pd.factorize(frame["item"].astype(str), sort=False)
        # order ids naturally (numerically when they are numbers) so that rows are stable
        u_perm = _natural_order(np.asarray(user_ids, dtype=object))
        i_perm = _natural_order(np.asarray(item_ids, dtype=object))
        u_rank = np.empty_like(u_perm)
        u_rank[u_perm] = np.arange(len(u_perm))
        i_rank = np.empty_like(i_perm)
        i_rank[i_perm] = np.arange(len(i_perm))
        return cls(
            users=u_rank[u_codes].astype(np.int32),
            items=i_rank[i_codes].astype(np.int32),
            user_ids=np.asarray(user_ids, dtype=object)[u_perm].astype(str),
            item_ids=np.asarray(item_ids, dtype=object)[i_perm].astype(str),
            filter_rounds=tuple(filter_rounds),
        )

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def num_interactions(self) -> int:
        return len(self.users)

    def to_csr(self) -> sp.csr_matrix:
        """The ``num_users x num_items`` 0/1 interaction matrix R."""
        return _csr(self.users, self.items, (self.num_users, self.num_items))

    def stats(self) -> dict:
        """Counts and density, as in the paper's Table 1."""
        return {
            "users": self.num_users,
            "items": self.num_items,
            "interactions": self.num_interactions,
            "density": self.num_interactions / (self.num_users * self.num_items),
        }


def _natural_order(ids: np.ndarray) -> np.ndarray:
    numeric = pd.to_numeric(pd.Series(ids), errors="coerce")
    if not numeric.isna().any():
        return np.argsort(numeric.to_numpy(), kind="stable")
    return np.argsort(ids.astype(str), kind="stable")


def _csr(rows, cols, shape) -> sp.csr_matrix:
    m = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (np.asarray(rows), np.asarray(cols))), shape=shape
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    m.sort_indices()
    return m


def kcore_filter(
    frame: pd.DataFrame, min_user: int = 20, min_item: int = 20, max_rounds: int = 100
) -> tuple[pd.DataFrame, list[dict]]:
    """Keep users and items with at least ``min_user`` / ``min_item`` interactions, repeatedly.

    One round counts users and items on the current data and drops both kinds of rare nodes;
    rounds repeat until nothing changes, since removing an item can push a user below the
    threshold. Returns the filtered frame and one ``{round, users, items, interactions}`` row
    per round (round 0 is the input). Raises :class:`DataError` if nothing survives.
    """
    frame = frame.drop_duplicates(["user", "item"]).reset_index(drop=True)
    users = pd.factorize(frame["user"])[0]
    items = pd.factorize(frame["item"])[0]
    keep = np.ones(len(frame), dtype=bool)
    rounds = [_round_counts(0, users, items)]
    for r in range(1, max_rounds + 1):
        ucount = np.bincount(users[keep], minlength=users.max(initial=-1) + 1)
        icount = np.bincount(items[keep], minlength=items.max(initial=-1) + 1)
        drop = keep & ((ucount[users] < min_user) | (icount[items] < min_item))
        if not drop.any():
            break
        keep &= ~drop
        rounds.append(_round_counts(r, users[keep], items[keep]))
        if not keep.any():
            raise DataError(
                f"the {min_user}/{min_item}-core filter removed every interaction; lower"
                " --min-count or use a larger dataset"
            )
    return frame[keep].reset_index(drop=True), rounds


def _round_counts(r: int, users: np.ndarray, items: np.ndarray) -> dict:
    return {
        "round": r,
        "users": int(len(np.unique(users))),
        "items": int(len(np.unique(items))),
        "interactions": int(len(users)),
    }


def load_dataset(
    name: str,
    min_count: int | None = 20,
    data_dirs: Iterable[str | os.PathLike | None] = (),
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = False,
) -> Interactions:
    """Load a dataset as implicit feedback after the iterative ``min_count``-core filter.

    ``min_count=None`` (or 0) keeps every interaction. The filter's rounds are kept in
    ``Interactions.filter_rounds``.
    """
    frame = load_ratings(name, data_dirs, cache_dir, download, progress)
    rounds: list[dict] = []
    if min_count:
        frame, rounds = kcore_filter(frame, min_count, min_count)
    return Interactions.from_frame(frame, tuple(rounds))


@dataclass(frozen=True)
class Split:
    """A per-user split of implicit feedback into train / validation / test matrices.

    All three are ``num_users x num_items`` 0/1 CSR matrices over the same ids. ``train_full``
    (train + validation) is the training half used to refit the final model and to mask items
    when testing.
    """

    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    seed: int | None = None
    info: dict = field(default_factory=dict, compare=False)

    @property
    def num_users(self) -> int:
        return self.train.shape[0]

    @property
    def num_items(self) -> int:
        return self.train.shape[1]

    @property
    def train_full(self) -> sp.csr_matrix:
        return (self.train + self.valid).tocsr()

    def frames(self) -> dict[str, pd.DataFrame]:
        """Each part as a ``user, item`` frame of original ids (what ``bincf-lite split`` writes)."""
        out = {}
        for part in ("train", "valid", "test"):
            m = getattr(self, part).tocoo()
            order = np.lexsort((m.col, m.row))
            out[part] = pd.DataFrame(
                {"user": self.user_ids[m.row[order]], "item": self.item_ids[m.col[order]]}
            )
        return out


def split_interactions(
    data: Interactions,
    test_frac: float = 0.5,
    valid_frac: float = 0.1,
    seed: int = 0,
) -> Split:
    """Per-user random split: ``test_frac`` of each user's positives to test, then
    ``valid_frac`` of the remaining training half to validation.

    Each user keeps at least one training item; counts are rounded
    (``round(n * test_frac)``), so a user with 2 positives gives 1 to test. Seeded: the same
    ``seed`` always gives the same split.
    """
    if not (0 <= test_frac < 1 and 0 <= valid_frac < 1):
        raise ValueError("test_frac and valid_frac must lie in [0, 1)")
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(data.num_interactions), data.users))
    users = data.users[order]
    items = data.items[order]
    counts = np.bincount(users, minlength=data.num_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(users)) - starts[users]  # position of each row within its user
    n_test = np.minimum(np.floor(counts * test_frac + 0.5).astype(np.int64), counts - 1)
    n_train_half = counts - n_test
    n_valid = np.minimum(
        np.floor(n_train_half * valid_frac + 0.5).astype(np.int64), n_train_half - 1
    )
    n_valid = np.maximum(n_valid, 0)
    is_test = pos < n_test[users]
    is_valid = ~is_test & (pos < (n_test + n_valid)[users])
    is_train = ~is_test & ~is_valid
    shape = (data.num_users, data.num_items)
    return Split(
        train=_csr(users[is_train], items[is_train], shape),
        valid=_csr(users[is_valid], items[is_valid], shape),
        test=_csr(users[is_test], items[is_test], shape),
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        seed=seed,
        info={"test_frac": test_frac, "valid_frac": valid_frac, "seed": seed},
    )


def sample_negatives(
    positives: sp.csr_matrix,
    users: np.ndarray,
    rng: np.random.Generator,
    num_negatives: int = 1,
    max_tries: int = 100,
) -> np.ndarray:
    """Uniform negatives: for each entry of ``users``, ``num_negatives`` items it has not
    interacted with in ``positives`` (vectorised rejection sampling).

    Returns an ``(len(users), num_negatives)`` int64 array (squeezed to 1-D when
    ``num_negatives == 1``).
    """
    positives = sp.csr_matrix(positives)
    positives.sort_indices()
    num_users, num_items = positives.shape
    users = np.asarray(users, dtype=np.int64)
    full = np.diff(positives.indptr)[users] >= num_items
    if full.any():
        raise DataError(f"user {int(users[full][0])} interacted with every item: no negatives")
    flat_users = np.repeat(users, num_negatives)
    neg = rng.integers(0, num_items, size=len(flat_users))
    keys = (
        np.repeat(np.arange(num_users, dtype=np.int64), np.diff(positives.indptr)) * num_items
        + positives.indices
    )
    todo = np.arange(len(flat_users))
    for _ in range(max_tries):
        q = flat_users[todo] * num_items + neg[todo]
        pos = np.minimum(np.searchsorted(keys, q), max(len(keys) - 1, 0))
        bad = keys[pos] == q if len(keys) else np.zeros(len(q), dtype=bool)
        todo = todo[bad]
        if len(todo) == 0:
            break
        neg[todo] = rng.integers(0, num_items, size=len(todo))
    else:
        raise DataError("negative sampling did not converge: users with almost every item")
    neg = neg.reshape(len(users), num_negatives)
    return neg[:, 0] if num_negatives == 1 else neg


def synthetic_interactions(
    num_users: int = 300,
    num_items: int = 200,
    num_clusters: int = 5,
    interactions_per_user: int = 30,
    noise: float = 0.1,
    seed: int = 0,
) -> Interactions:
    """A seeded dataset with planted structure, for tests and toy examples.

    Users and items belong to ``num_clusters`` groups; each user picks most items from its own
    group (with a popularity skew inside the group) and a share ``noise`` uniformly at random.
    A good recommender recovers the groups, so it beats popularity clearly on this data.
    """
    rng = np.random.default_rng(seed)
    user_group = rng.integers(0, num_clusters, num_users)
    item_group = rng.integers(0, num_clusters, num_items)
    popularity = rng.pareto(1.5, num_items) + 1.0
    rows, cols = [], []
    n = min(interactions_per_user, num_items)
    for g in range(num_clusters):
        members = np.flatnonzero(item_group == g)
        if len(members) == 0:
            continue
        p_in = popularity[members] / popularity[members].sum()
        for u in np.flatnonzero(user_group == g):
            n_in = min(len(members), rng.binomial(n, 1.0 - noise))
            chosen = set(rng.choice(members, size=n_in, replace=False, p=p_in).tolist())
            while len(chosen) < n:
                chosen.add(int(rng.integers(0, num_items)))
            rows.extend([u] * len(chosen))
            cols.extend(sorted(chosen))
    frame = pd.DataFrame(
        {"user": [f"u{u}" for u in rows], "item": [f"i{i}" for i in cols], "rating": 1.0}
    )
    return Interactions.from_frame(frame)


def load_item_titles(
    name: str,
    data_dirs: Iterable[str | os.PathLike | None] = (),
    cache_dir: str | os.PathLike | None = None,
    download: bool = False,
) -> dict[str, str]:
    """Item titles of a MovieLens dataset, by original item id (empty when it has none)."""
    archive = _archive(name)
    ratings = locate_dataset(name, data_dirs, cache_dir, download)
    path = ratings.parent / archive.titles if archive.titles else None
    if path is None or not path.is_file():
        return {}
    sep = "|" if path.name == "u.item" else "::"
    titles = {}
    for line in path.read_bytes().decode("latin-1").splitlines():
        fields = line.split(sep)
        if len(fields) >= 2:
            titles[fields[0].strip()] = fields[1].strip()
    return titles
