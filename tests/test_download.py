"""Downloads against a local HTTP server on 127.0.0.1 (no outside traffic): checksums, errors, atomicity."""

from __future__ import annotations

import functools
import hashlib
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spiking_maelstrom.data import download as dl
from spiking_maelstrom.data.download import DownloadError, download, download_nmnist, download_shd, file_digest
from spiking_maelstrom.data.nmnist import NMNISTFiles
from spiking_maelstrom.data.shd import SHDFile

from .test_nmnist import write_tree, zip_tree
from .test_shd import write_fixture

PAYLOAD = bytes(range(256)) * 4000  # about 1 MB: several chunks


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path):
    """``(folder, base URL)`` of an HTTP server on 127.0.0.1 serving ``folder``, shut down after the test."""
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "payload.bin").write_bytes(PAYLOAD)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/payload.bin"


def test_download_verifies_sha256_and_md5(tmp_path, served):
    _, base = served
    sha256 = hashlib.sha256(PAYLOAD).hexdigest()
    path = download(f"{base}/payload.bin", tmp_path / "out" / "p.bin", sha256.upper())
    assert path.read_bytes() == PAYLOAD and file_digest(path) == sha256
    assert sorted(p.name for p in path.parent.iterdir()) == ["p.bin"]
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert download(f"{base}/payload.bin", tmp_path / "m.bin", md5, "md5").read_bytes() == PAYLOAD


def test_checksum_mismatch_names_file_and_both_hashes_and_keeps_nothing(tmp_path, served):
    _, base = served
    wrong, right = "0" * 64, hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(DownloadError, match=rf"p\.bin: sha256 checksum mismatch .*expected {wrong}, got {right}"):
        download(f"{base}/payload.bin", tmp_path / "p.bin", wrong)
    assert list(tmp_path.iterdir()) == [tmp_path / "served"]


def test_http_error_and_no_network(tmp_path, served):
    _, base = served
    with pytest.raises(DownloadError, match=r"missing\.bin: cannot download .*HTTP 404"):
        download(f"{base}/nothing.bin", tmp_path / "missing.bin", "0" * 64)
    with pytest.raises(DownloadError, match=r"offline\.bin: cannot download .*check the network"):
        download(closed_port_url(), tmp_path / "offline.bin", "0" * 64, timeout=5)
    assert list(tmp_path.iterdir()) == [tmp_path / "served"]


def test_existing_verified_file_is_not_downloaded_again(tmp_path):
    (tmp_path / "p.bin").write_bytes(PAYLOAD)
    path = download(closed_port_url(), tmp_path / "p.bin", hashlib.sha256(PAYLOAD).hexdigest())
    assert path.read_bytes() == PAYLOAD


def test_download_without_checksum_warns(tmp_path, served):
    _, base = served
    with pytest.warns(UserWarning, match=r"p\.bin: downloading .* without a checksum"):
        download(f"{base}/payload.bin", tmp_path / "p.bin")


def test_downloaded_data_sets_are_read_where_they_land(tmp_path, served, monkeypatch):
    folder, base = served
    zip_tree(folder, write_tree(tmp_path / "tree", split="Test"), split="Test")
    archive = download_nmnist(tmp_path / "nmnist", "test", f"{base}/Test.zip", file_digest(folder / "Test.zip"))
    assert archive == tmp_path / "nmnist" / "Test.zip" and len(NMNISTFiles(tmp_path / "nmnist", "test")) == 6
    write_fixture(folder / "shd_train.h5.gz")
    monkeypatch.setitem(dl.SHD_URLS, "train", f"{base}/shd_train.h5.gz")
    path = download_shd(tmp_path / "shd", "train", file_digest(folder / "shd_train.h5.gz", "md5"), "md5")
    assert path == tmp_path / "shd" / "shd_train.h5.gz" and len(SHDFile(path)) == 6
