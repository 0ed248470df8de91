"""Image sources: paths and URIs told apart, lists read, objects listed, hashed and classified when unreadable."""

from __future__ import annotations

import errno
import hashlib

import pytest

from annotator.errors import MissingExtraError, SourceError
from annotator.images.decoding import ReasonCode, read_failure
from annotator.images.discovery import discover_listed, hash_file, hash_location
from annotator.images.lists import read_list
from annotator.images.sources import is_throttled, is_uri, name_of, normalised
from tests.conftest import write_faces


def test_uris_and_paths_are_told_apart_and_recorded_as_given():
    assert is_uri("s3://bucket/a/b.jpg") and is_uri("gs://bucket/x") and not is_uri("/srv/photos/a.jpg")
    assert not is_uri("relative/a.jpg") and not is_uri("C:/photos")
    assert normalised("s3://bucket/prefix/") == "s3://bucket/prefix"
    assert normalised("photos/a.jpg").endswith("/photos/a.jpg")
    assert name_of("s3://bucket/a/b.jpg") == "b.jpg" == name_of("/srv/a/b.jpg")


def test_a_list_reads_text_or_csv_and_makes_relative_paths_absolute(tmp_path):
    text = tmp_path / "lists" / "images.txt"
    text.parent.mkdir()
    text.write_text("# a comment\n\nnear.jpg\n../far, with a comma.png\ns3://bucket/a.jpg\n/abs/b.jpg\nnear.jpg\n")
    assert read_list(text) == [str(tmp_path / "lists" / "near.jpg"), str(tmp_path / "far, with a comma.png"),
                               "s3://bucket/a.jpg", "/abs/b.jpg"]
    with_header = tmp_path / "images.csv"
    with_header.write_text("label,URI\n1,gs://bucket/x.png\n0,y.png\n")
    assert read_list(with_header) == ["gs://bucket/x.png", str(tmp_path / "y.png")]
    no_header = tmp_path / "plain.csv"
    no_header.write_text("a.png,1\nb.png,0\n")
    assert read_list(no_header) == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    short = tmp_path / "short.csv"
    short.write_text("id,path\n1\n")
    with pytest.raises(SourceError, match="line 2 has no 'path' cell"):
        read_list(short)
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(SourceError, match="not UTF-8"):
        read_list(tmp_path / "binary.txt")


def test_listed_local_files_are_hashed_and_rejected_with_their_reason(tmp_path):
    faces = write_faces(tmp_path, 3)
    (tmp_path / "notes.txt").write_text("listed, so it must be an image")
    listed = [str(faces[0]), str(tmp_path / "notes.txt"), str(tmp_path / "gone.png"), str(faces[1]), str(faces[2])]
    batches = list(discover_listed(listed, batch_size=2))
    assert [len(b.found) + len(b.failures) for b in batches] == [2, 2, 1]
    found = [item for batch in batches for item in batch.found]
    assert [item.path for item in found] == [str(faces[0]), str(faces[1]), str(faces[2])]
    assert found[0].sha256 == hash_file(faces[0])[0] == hashlib.sha256(faces[0].read_bytes()).hexdigest()
    reasons = {str(path): failure.reason for batch in batches for path, failure in batch.failures}
    assert reasons == {str(tmp_path / "notes.txt"): ReasonCode.NOT_AN_IMAGE,
                       str(tmp_path / "gone.png"): ReasonCode.UNREADABLE}


def test_objects_of_any_fsspec_store_are_hashed_streamed(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    data = write_faces(tmp_path, 1)[0].read_bytes() + bytes(3 << 20)  # several 1 MiB blocks
    memory = fsspec.filesystem("memory")
    memory.pipe("/photos/a.png", data)
    assert hash_location("memory://photos/a.png") == (hashlib.sha256(data).hexdigest(), len(data), "PNG")
    with pytest.raises(FileNotFoundError):
        hash_location("memory://photos/missing.png")


def test_read_failures_of_objects_have_their_own_reason_codes():
    uri = "s3://bucket/a.jpg"
    assert read_failure(FileNotFoundError(uri), uri).reason is ReasonCode.MISSING
    assert read_failure(PermissionError("Access Denied"), uri).reason is ReasonCode.ACCESS_DENIED
    assert read_failure(OSError(errno.EBUSY, "Please reduce your request rate."), uri).reason is ReasonCode.THROTTLED
    assert read_failure(ConnectionError("reset"), uri).reason is ReasonCode.UNREADABLE
    # A local file keeps the reason it always had.
    assert read_failure(FileNotFoundError(2, "No such file or directory"), "/a.jpg").reason is ReasonCode.UNREADABLE
    assert is_throttled(RuntimeError("429 Too Many Requests")) and not is_throttled(RuntimeError("boom"))


def test_an_unknown_kind_of_uri_is_a_message():
    with pytest.raises((SourceError, MissingExtraError), match="nosuchscheme://x"):
        hash_location("nosuchscheme://x/y.jpg")
