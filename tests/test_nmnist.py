"""N-MNIST: the 5-byte event decoder and writer, folder and zip layouts, errors that name the file."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from spiking_maelstrom.data.events import EventFormatError, nmnist_events
from spiking_maelstrom.data.nmnist import NMNISTFiles, encode_nmnist, read_nmnist_bin, write_nmnist_bin

from .conftest import SHARED_DATA

NMNIST_SMALL = SHARED_DATA / "nmnist-small"


def random_nmnist(rng: np.random.Generator, n: int = 60) -> np.ndarray:
    """``n`` random N-MNIST events in time order over 0.3 s."""
    t = np.sort(rng.integers(0, 300_000, n))
    return nmnist_events(rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n), t)


def write_tree(root: Path, split: str = "Train", labels: tuple[int, ...] = (0, 1, 2), per_label: int = 2) -> dict:
    """Write a tiny N-MNIST split in the official layout; returns ``{relative name: events}``."""
    rng = np.random.default_rng(len(split))
    samples = {}
    for label in labels:
        for n in range(per_label):
            name = f"{split}/{label}/{n:05d}.bin"
            samples[name] = random_nmnist(rng)
            write_nmnist_bin(root / name, samples[name])
    return samples


def zip_tree(root: Path, samples: dict, split: str = "Train") -> Path:
    """The same samples as the official archive ``root/<split>.zip``."""
    path = root / f"{split}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, events in samples.items():
            archive.writestr(name, encode_nmnist(events))
    return path


def test_decodes_the_documented_bit_layout():
    data = bytes([33, 0, 0x00, 0x00, 0x07, 3, 5, 0x81, 0x23, 0x45, 0, 33, 0xFF, 0xFF, 0xFF])
    events = read_nmnist_bin(data)
    assert events["x"].tolist() == [33, 3, 0]
    assert events["y"].tolist() == [0, 5, 33]
    assert events["p"].tolist() == [0, 1, 1]
    assert events["t"].tolist() == [7, 0x12345, (1 << 23) - 1]


def test_write_read_round_trip_is_exact_and_atomic(tmp_path):
    events = random_nmnist(np.random.default_rng(0), 500)
    write_nmnist_bin(tmp_path / "a.bin", events)
    assert (tmp_path / "a.bin").stat().st_size == 5 * 500
    assert np.array_equal(read_nmnist_bin(tmp_path / "a.bin"), events)
    assert np.array_equal(read_nmnist_bin((tmp_path / "a.bin").read_bytes()), events)
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_writer_refuses_what_the_format_cannot_hold(tmp_path):
    events = random_nmnist(np.random.default_rng(0), 5)
    events["t"][-1] = 1 << 23
    with pytest.raises(EventFormatError, match=r"late\.bin: timestamp \(us\) 8388608"):
        write_nmnist_bin(tmp_path / "late.bin", events)
    assert not list(tmp_path.iterdir())


def test_size_not_a_multiple_of_five_names_the_file(tmp_path):
    path = tmp_path / "Train" / "3" / "00012.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(1003))
    with pytest.raises(EventFormatError, match=r"Train/3/00012\.bin: size 1003 bytes is not a multiple of 5"):
        read_nmnist_bin(path)


@pytest.mark.parametrize("field, column", [("x", 0), ("y", 1)])
def test_coordinates_outside_the_sensor_name_the_file(tmp_path, field, column):
    data = bytearray(encode_nmnist(random_nmnist(np.random.default_rng(0), 10)))
    data[5 * 4 + column] = 34
    path = tmp_path / "bad.bin"
    path.write_bytes(bytes(data))
    with pytest.raises(EventFormatError, match=rf"bad\.bin: {field} 34 at event 4 is outside 0\.\.33"):
        read_nmnist_bin(path)


def test_empty_sample_names_the_file(tmp_path):
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(EventFormatError, match=r"empty\.bin: empty sample"):
        read_nmnist_bin(tmp_path / "empty.bin")


def test_decreasing_timestamps_are_sorted_stably_with_a_warning(tmp_path):
    events = nmnist_events(np.arange(5), np.zeros(5), np.zeros(5), np.array([10, 30, 20, 20, 5]))
    write_nmnist_bin(tmp_path / "shuffled.bin", events)
    with pytest.warns(UserWarning, match=r"shuffled\.bin: timestamps decrease"):
        decoded = read_nmnist_bin(tmp_path / "shuffled.bin")
    assert decoded["t"].tolist() == [5, 10, 20, 20, 30]
    assert decoded["x"].tolist() == [4, 0, 2, 3, 1]  # equal times keep their file order


def test_folder_layout_is_found_in_sorted_order_with_labels(tmp_path):
    samples = write_tree(tmp_path, labels=(2, 0, 1))
    (tmp_path / "Train" / "notes.txt").write_text("ignored")
    files = NMNISTFiles(tmp_path, "train")
    assert len(files) == 6 and files.n_classes == 3 and files.split == "train"
    assert files.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert files.members == sorted(samples)
    for index, name in enumerate(files.members):
        events, label = files[index]
        assert np.array_equal(events, samples[name]) and label == int(name.split("/")[1])


def test_zip_archive_is_read_in_place_like_the_folder(tmp_path):
    folder, packed = tmp_path / "folder", tmp_path / "packed"
    samples = write_tree(folder)
    packed.mkdir()
    zip_tree(packed, samples)
    a, b = NMNISTFiles(folder, "train"), NMNISTFiles(packed, "train")
    assert b.archive == packed / "Train.zip" and b.files == [b.archive]
    assert b.members == a.members and np.array_equal(a.labels, b.labels)
    for index in range(len(a)):
        assert np.array_equal(a[index][0], b[index][0])


def test_errors_inside_a_zip_name_the_archive_and_member(tmp_path):
    with zipfile.ZipFile(tmp_path / "Test.zip", "w") as archive:
        archive.writestr("Test/7/00001.bin", bytes(7))
    files = NMNISTFiles(tmp_path, "test")
    with pytest.raises(EventFormatError, match=r"Test\.zip:Test/7/00001\.bin: size 7 bytes"):
        files[0]


def test_missing_data_says_where_it_should_be_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*Train/<label>/<n>\.bin.*garrickorchard\.com"):
        NMNISTFiles(tmp_path / "nowhere", "train")
    with pytest.raises(FileNotFoundError, match=r"'Test' not found.*Test\.zip.*datasets/README\.md"):
        NMNISTFiles(tmp_path, "test")
    (tmp_path / "Train" / "0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no N-MNIST samples in .*Train"):
        NMNISTFiles(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        NMNISTFiles(tmp_path, "valid")


@pytest.mark.skipif(not NMNIST_SMALL.is_dir(), reason=f"real N-MNIST subset not found at {NMNIST_SMALL}")
def test_real_nmnist_subset_decodes_completely():
    start = time.perf_counter()
    counts = {}
    for split, n in (("train", 1000), ("test", 100)):
        files = NMNISTFiles(NMNIST_SMALL, split)
        assert len(files) == n
        sizes = [len(files[i][0]) for i in range(n)]
        counts[split] = np.bincount(files.labels, minlength=10).tolist()
        assert 1000 < min(sizes) and max(sizes) < 8000
    assert counts["train"] == [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
    assert counts["test"] == [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]
    assert time.perf_counter() - start < 10.0  # vectorised decode: about 0.5 s on 2 cores


@pytest.mark.parametrize("split, label", [("Test", "11"), ("Train", "12"), ("Train", "010")])
def test_label_folder_beyond_the_ten_digits_names_the_folder(tmp_path, split, label):
    write_tree(tmp_path, split, labels=(0, 1))
    write_nmnist_bin(tmp_path / split / label / "00000.bin", random_nmnist(np.random.default_rng(0)))
    with pytest.raises(EventFormatError, match=rf"{split}/{label}: label {label} is outside 0\.\.9 \(N-MNIST has 10"):
        NMNISTFiles(tmp_path, split)


def test_label_beyond_the_ten_digits_in_a_zip_names_the_member(tmp_path):
    samples = write_tree(tmp_path / "folder", "Test", labels=(0, 11))
    zip_tree(tmp_path, samples, "Test")
    with pytest.raises(EventFormatError, match=r"Test\.zip:Test/11/00000\.bin: label 11 is outside 0\.\.9"):
        NMNISTFiles(tmp_path, "test")


def test_labels_with_leading_zeros_are_still_digits(tmp_path):
    write_nmnist_bin(tmp_path / "Train" / "07" / "00000.bin", random_nmnist(np.random.default_rng(0)))
    assert NMNISTFiles(tmp_path, "train").labels.tolist() == [7]


def test_truncated_zip_is_a_one_line_error_naming_it(tmp_path):
    path = zip_tree(tmp_path, write_tree(tmp_path / "folder"))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(EventFormatError, match=r"Train\.zip: unreadable zip data \(BadZipFile: ") as error:
        NMNISTFiles(tmp_path, "train")
    assert "\n" not in str(error.value)


def test_zip_member_name_that_is_not_utf8_is_a_one_line_error(tmp_path):
    path = zip_tree(tmp_path, write_tree(tmp_path / "folder", labels=(0,), per_label=1))
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the central directory entry: flag the name UTF-8, break its first byte
    data[entry + 9] |= 0x08
    data[entry + 46] = 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(EventFormatError, match=r"Train\.zip: unreadable zip data \(UnicodeDecodeError: "):
        NMNISTFiles(tmp_path, "train")


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_corrupt_zip_member_is_a_one_line_error_naming_it(tmp_path, method):
    path = tmp_path / "Train.zip"
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("Train/4/00000.bin", encode_nmnist(random_nmnist(np.random.default_rng(0), 400)))
    data = bytearray(path.read_bytes())
    data[100:110] = bytes(10)  # inside the member's (compressed) data
    path.write_bytes(bytes(data))
    files = NMNISTFiles(tmp_path, "train")
    with pytest.raises(EventFormatError, match=r"Train\.zip:Train/4/00000\.bin: unreadable zip data") as error:
        files[0]
    assert "\n" not in str(error.value)
