import pytest

from tunesmith.atomic import atomic_dir, atomic_open, write_text


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write("half of the new")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_dir_appears_whole_or_not_at_all(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as d:
        (d / "x").write_text("1")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(tmp_path / "d") as d:
        (d / "x").write_text("1")
    assert (tmp_path / "d" / "x").read_text() == "1"
    with atomic_dir(tmp_path / "d") as d:  # someone else finished first: theirs is kept
        (d / "y").write_text("2")
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["x"]
