"""evo2kit.files: the package's one content hash and one all-or-nothing write."""

import hashlib
import json

import pytest

from evo2kit.files import atomic_path, atomic_write, sha256_file, sha256_json, sha256_lines


def test_sha256_file_reads_past_one_block(tmp_path):
    data = bytes(range(256)) * 5000  # 1.28 MB: more than one 1 MiB block
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_sha256_lines_and_json_are_order_sensitive_where_order_means_something():
    assert sha256_lines(["AC", "GT"]) == hashlib.sha256(b"AC\nGT\n").hexdigest()
    assert sha256_lines(["AC", "GT"]) != sha256_lines(["ACG", "T"])  # the separator keeps the boundary
    assert sha256_json({"a": 1, "b": [2, 3]}) == sha256_json({"b": [2, 3], "a": 1})
    assert sha256_json([1, 2]) != sha256_json([2, 1])


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text("old")
    atomic_write(path, lambda f: json.dump({"x": 1}, f))
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "doc.txt"
    path.write_text("old")

    def half_then_fail(f):
        f.write("new, but cut ")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["doc.txt"]


def test_atomic_path_for_writers_that_take_a_name(tmp_path):
    path = tmp_path / "w.bin"
    with atomic_path(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".w.bin.") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"\x00\x01")
        assert not path.exists()  # nothing at the target before the block ends
    assert path.read_bytes() == b"\x00\x01" and not tmp.exists()
