"""The data protocol: loaders, the iterative filter, splits, negatives, and every bad input."""

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bincf_lite as bl
from bincf_lite import data as bd
from bincf_lite.data import DataError


# ---------------------------------------------------------------------------- real data


def test_ml1m_table1_exact(ml1m):
    """The paper's Table 1 comes out only when the filter is repeated until stable."""
    assert ml1m.stats()["users"] == 6022
    assert ml1m.stats()["items"] == 3043
    assert ml1m.stats()["interactions"] == 995154
    rounds = pd.DataFrame(ml1m.filter_rounds)
    assert rounds.iloc[1][["users", "items", "interactions"]].tolist() == [6040, 3043, 995492]
    assert rounds.iloc[-1][["users", "items", "interactions"]].tolist() == [6022, 3043, 995154]


def test_ml100k_counts(ml100k):
    assert (ml100k.num_users, ml100k.num_items, ml100k.num_interactions) == (917, 937, 94443)


def test_original_ids_kept(ml1m):
    assert ml1m.user_ids[0] == "1" and ml1m.item_ids[0] == "1"
    r = ml1m.to_csr()
    assert r.shape == (6022, 3043) and r.nnz == 995154
    assert np.diff(r.indptr).min() >= 20 and np.asarray(r.sum(axis=0)).min() >= 20


def test_ml1m_four_and_three_columns_agree(tmp_path, data_dir):
    three = Path(data_dir) / "ml-1m" / "ratings_uir.dat"
    lines = three.read_text(encoding="latin-1").splitlines()[:500]
    four = tmp_path / "ratings.dat"
    four.write_text("".join(f"{line}::97830{i:04d}\n" for i, line in enumerate(lines)))
    small = tmp_path / "ratings_uir.dat"
    small.write_text("\n".join(lines) + "\n")
    a, b = bd.read_movielens(four), bd.read_movielens(small)
    pd.testing.assert_frame_equal(a, b)


def test_ml10m_half_stars(tmp_path):
    f = tmp_path / "ratings.dat"
    f.write_text("1::122::5::838985046\n1::185::4.5::838983525\n2::110::0.5::868245777\n")
    df = bd.read_movielens(f)
    assert df["rating"].tolist() == [5.0, 4.5, 0.5]


def test_yelp_string_ids(tmp_path):
    f = tmp_path / "review.json"
    f.write_text(
        '{"review_id": "r1", "user_id": "q-xY_z", "business_id": "b#1", "stars": 4.0}\n'
        '{"review_id": "r2", "user_id": "q-xY_z", "business_id": "b#2", "stars": 2}\n'
    )
    df = bl.data.load_ratings(str(f))
    data = bl.Interactions.from_frame(df)
    assert list(data.user_ids) == ["q-xY_z"] and list(data.item_ids) == ["b#1", "b#2"]


def test_interactions_file_tsv_and_csv(tmp_path):
    tsv = tmp_path / "train.tsv"
    tsv.write_text("alice\tx1\t5\nbob\tx2\t3\n")
    csv = tmp_path / "train.csv"
    csv.write_text("user,item,rating\nalice,x1,5\nbob,x2,3\n")
    pd.testing.assert_frame_equal(bd.read_interactions(tsv), bd.read_interactions(csv))
    two = tmp_path / "two.tsv"
    two.write_text("alice\tx1\nbob\tx2\n")
    assert bd.read_interactions(two)["rating"].tolist() == [1.0, 1.0]


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "content, message",
    [
        ("1\t2\t3\n4\t5\n", "line 2"),  # too few fields
        ("1,2,3\n4,5,6\n", "expected at least 2 fields"),  # wrong separator for a .tsv
        ("1\t2\tfive\n", "line 1: rating 'five' is not a number"),
        ("", "empty"),
        ("\n  \n", "empty"),
    ],
)
def test_malformed_interactions(tmp_path, content, message):
    f = tmp_path / "bad.tsv"
    f.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        bd.read_interactions(f)
    assert "bad.tsv" in str(err.value)


def test_malformed_movielens_line_number(tmp_path):
    f = tmp_path / "ratings.dat"
    f.write_text("1::2::3::4\n1::3::4::5\n1::4\n")
    with pytest.raises(DataError, match=r"ratings.dat, line 3: expected at least 3 fields"):
        bd.read_movielens(f)


def test_binary_file(tmp_path):
    f = tmp_path / "data.tsv"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(DataError, match="binary"):
        bd.read_interactions(f)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        bd.read_interactions(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match="is a directory"):
        bd.read_interactions(tmp_path)


def test_bad_yelp_line(tmp_path):
    f = tmp_path / "review.json"
    f.write_text('{"user_id": "a", "business_id": "b", "stars": 1}\n{"user_id": "a"}\n')
    with pytest.raises(DataError, match="line 2: expected a JSON object"):
        bd.read_yelp(f)


def test_filter_that_empties(tmp_path):
    frame = pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"], "rating": [1.0, 1.0]})
    with pytest.raises(DataError, match="removed every interaction"):
        bl.kcore_filter(frame, 20, 20)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'ml-2m'"):
        bl.data.load_ratings("ml-2m")


def test_offline_without_data(tmp_path, monkeypatch):
    """No data anywhere and no network: the error says where it looked and the URL."""
    arch = bd.DATASETS["ml-100k"]
    monkeypatch.setitem(
        bd.DATASETS, "ml-100k", bd.Archive(**{**arch.__dict__, "url": "http://127.0.0.1:9/ml-100k.zip"})
    )
    with pytest.raises(DataError) as err:
        bd.locate_dataset("ml-100k", [tmp_path / "empty"], cache_dir=tmp_path / "cache")
    msg = str(err.value)
    assert "u.data" in msg and str(tmp_path / "empty") in msg and "127.0.0.1:9/ml-100k.zip" in msg
    with pytest.raises(DataError, match="files.grouplens.org/datasets/movielens/ml-1m.zip"):
        bd.locate_dataset("ml-1m", [tmp_path], cache_dir=tmp_path / "cache", download=False)


# ---------------------------------------------------------------------------- download


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 serving byte strings from a dict."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            truncate = self.path.endswith("cut.zip")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if truncate else body)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield files, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def _fake_archive(monkeypatch, blob: bytes, url: str):
    arch = bd.DATASETS["ml-100k"]
    fake = bd.Archive(
        **{
            **arch.__dict__,
            "url": url,
            "md5": hashlib.md5(blob).hexdigest(),
            "sha256": hashlib.sha256(blob).hexdigest(),
        }
    )
    monkeypatch.setitem(bd.DATASETS, "ml-100k", fake)


def test_download_verify_extract(tmp_path, server, monkeypatch):
    files, base = server
    blob = _zip_bytes({"ml-100k/u.data": b"1\t10\t5\t0\n2\t10\t3\t0\n", "ml-100k/README": b"x"})
    files["/ml-100k.zip"] = blob
    _fake_archive(monkeypatch, blob, base + "/ml-100k.zip")
    path = bd.locate_dataset("ml-100k", [], cache_dir=tmp_path)
    assert path == tmp_path / "ml-100k" / "u.data"
    assert len(bl.data.load_ratings("ml-100k", cache_dir=tmp_path)) == 2
    assert not list(tmp_path.glob(".*part"))


def test_checksum_mismatch_keeps_nothing(tmp_path, server, monkeypatch):
    files, base = server
    blob = _zip_bytes({"ml-100k/u.data": b"1\t10\t5\t0\n"})
    files["/ml-100k.zip"] = blob + b"tampered"
    _fake_archive(monkeypatch, blob, base + "/ml-100k.zip")
    with pytest.raises(DataError, match="checksum mismatch"):
        bd.download_archive("ml-100k", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_leaves_no_half_file(tmp_path, server, monkeypatch):
    files, base = server
    blob = _zip_bytes({"ml-100k/u.data": b"1\t10\t5\t0\n" * 1000})
    files["/cut.zip"] = blob
    _fake_archive(monkeypatch, blob, base + "/cut.zip")
    with pytest.raises((DataError, OSError)):
        bd.download_archive("ml-100k", tmp_path, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_unsafe_zip_member_refused(tmp_path, server, monkeypatch):
    files, base = server
    blob = _zip_bytes({"../evil.txt": b"x", "ml-100k/u.data": b"1\t2\t3\t4\n"})
    files["/ml-100k.zip"] = blob
    _fake_archive(monkeypatch, blob, base + "/ml-100k.zip")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="would escape"):
        bd.download_archive("ml-100k", cache)
    assert not (tmp_path / "evil.txt").exists()


# ---------------------------------------------------------------------------- split and negatives


def test_split_is_per_user_half_and_disjoint(ml100k):
    s = bl.split_interactions(ml100k, seed=0)
    r = ml100k.to_csr()
    assert (s.train + s.valid + s.test - r).nnz == 0
    assert s.train.multiply(s.test).nnz == 0 and s.train.multiply(s.valid).nnz == 0
    n = np.diff(r.indptr)
    n_test = np.diff(s.test.indptr)
    assert np.all(np.abs(n_test - n / 2) <= 0.5)
    half = np.diff(s.train_full.indptr)
    assert np.all(np.abs(np.diff(s.valid.indptr) - half * 0.1) <= 0.5)


def test_split_seeded(toy):
    a, b, c = (bl.split_interactions(toy, seed=k) for k in (0, 0, 1))
    assert (a.test != b.test).nnz == 0
    assert (a.test != c.test).nnz > 0


def test_split_frames_keep_original_ids(toy):
    frames = bl.split_interactions(toy, seed=0).frames()
    assert frames["train"]["user"].str.startswith("u").all()
    assert frames["test"]["item"].str.startswith("i").all()


def test_negatives_are_never_positives(ml100k):
    r = ml100k.to_csr()
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(r.shape[0]), 50)
    neg = bl.sample_negatives(r, users, rng)
    assert neg.shape == users.shape
    assert np.asarray(r[users, neg]).ravel().sum() == 0
    many = bl.sample_negatives(r, np.arange(10), rng, num_negatives=7)
    assert many.shape == (10, 7)


def test_negatives_error_when_user_has_everything():
    import scipy.sparse as sp

    full = sp.csr_matrix(np.ones((2, 3)))
    with pytest.raises(DataError, match="every item"):
        bl.sample_negatives(full, np.array([0]), np.random.default_rng(0))


def test_synthetic_is_seeded_and_structured(toy):
    again = bl.synthetic_interactions(num_users=200, num_items=120, num_clusters=4, seed=1)
    assert np.array_equal(toy.users, again.users) and np.array_equal(toy.items, again.items)
    assert toy.num_interactions == 200 * 30
