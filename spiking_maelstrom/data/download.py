"""Optional downloads of the recorded data sets, checked against a checksum, written atomically.

SHD is served by its authors at :data:`SHD_URLS`. They publish MD5 sums next to the files
(https://zenkelab.org/datasets/md5sums.txt); no sums are built in here, because they could not be
checked against the files from this project's machines: pass the published one as ``checksum`` with
``algorithm="md5"``, or a sha256 you computed. N-MNIST's ``Train.zip`` / ``Test.zip`` are linked
from https://www.garrickorchard.com/datasets/n-mnist to a file host whose address changes, so its
URL and checksum are parameters too.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from ..files import atomic_write
from ..progress import bar
from .events import split_folder
from .nmnist import SPLITS

SHD_URLS = {
    "train": "https://zenkelab.org/datasets/shd_train.h5.gz",
    "test": "https://zenkelab.org/datasets/shd_test.h5.gz",
}
CHUNK = 1 << 20


class DownloadError(OSError):
    """A download failed: no network, an HTTP error, or a checksum that does not match."""


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of the file at ``path``."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | Path,
    checksum: str | None = None,
    algorithm: str = "sha256",
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    The data go to a ``*.part`` file beside ``dest``, hashed on the way, and are renamed to ``dest``
    only when the ``algorithm`` digest equals ``checksum`` (any case); otherwise :class:`DownloadError`
    names the file and both digests and nothing is left behind. Without ``checksum`` nothing can be
    verified and a warning says so. An existing ``dest`` that matches (or any, without a checksum) is
    kept and not downloaded again.
    """
    dest = Path(dest)
    if dest.exists() and (checksum is None or file_digest(dest, algorithm) == checksum.lower()):
        return dest
    if checksum is None:
        warnings.warn(f"{dest}: downloading {url} without a checksum; the file is not verified", stacklevel=2)
    digest = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_write(dest, ".part") as part:
            size = int(response.headers.get("Content-Length") or 0) or None
            with (
                open(part, "wb") as out,
                bar(total=size, unit="B", unit_scale=True, desc=dest.name) as shown,
            ):
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    shown.update(len(chunk))
            if checksum is not None and digest.hexdigest() != checksum.lower():
                raise DownloadError(
                    f"{dest}: {algorithm} checksum mismatch for {url}: expected {checksum.lower()}, "
                    f"got {digest.hexdigest()}; the download was discarded"
                )
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{dest}: cannot download {url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"{dest}: cannot download {url} ({reason}); check the network, or fetch the file by hand and put it there"
        ) from err
    return dest


def download_shd(root: str | Path, split: str, checksum: str | None = None, algorithm: str = "sha256") -> Path:
    """Download SHD's ``shd_<split>.h5.gz`` from its official location into ``root``; read it with ``SHDFile``."""
    split = split_folder(split, tuple(SHD_URLS))
    url = SHD_URLS[split]
    return download(url, Path(root) / url.rsplit("/", 1)[1], checksum, algorithm)


def download_nmnist(
    root: str | Path,
    split: str,
    url: str,
    checksum: str | None = None,
    algorithm: str = "sha256",
) -> Path:
    """Download N-MNIST's ``Train.zip`` or ``Test.zip`` from ``url`` into ``root``, where ``NMNISTFiles``
    reads it without unpacking."""
    return download(url, Path(root) / f"{split_folder(split, SPLITS)}.zip", checksum, algorithm)
