"""WET reader: real framing, headers kept, and every kind of bad input counted, not fatal."""
import gzip

import pytest

from data_pipelines import synthetic_wet, wet


def _docs(seed, count):
    return [synthetic_wet.frame_record(**kw)
            for kw in synthetic_wet.synthetic_documents(seed, count)]


def _write(path, records, gzipped):
    with open(path, "wb") as out:
        synthetic_wet.write_members(out, records, gzipped)
    return str(path)


def _read(path, **kwargs):
    stats = wet.ReadStats()
    return list(wet.read_wet_file(str(path), stats, **kwargs)), stats


@pytest.mark.parametrize("suffix", [".wet.gz", ".wet"])
def test_reads_all_records_and_keeps_headers(tmp_path, suffix):
    path = tmp_path / f"a{suffix}"
    synthetic_wet.write_wet_file(str(path), seed=3, count=10)
    expected = list(synthetic_wet.synthetic_documents(3, 10))
    records, stats = _read(path)
    assert [r.record_id for r in records] == [d["record_id"] for d in expected]
    assert [r.target_uri for r in records] == [d["target_uri"] for d in expected]
    assert [r.language for r in records] == [d["language"] for d in expected]
    assert [r.text for r in records] == [d["block"] for d in expected]
    assert stats.records_read == 11
    assert stats.records_by_type == {"warcinfo": 1, "conversion": 10}
    assert not stats.malformed


def test_content_length_counts_utf8_bytes_not_characters(tmp_path):
    text = "Größere Straßen — café ✓ " * 20
    path = _write(tmp_path / "u.wet.gz", [synthetic_wet.frame_record(text)], True)
    records, stats = _read(path)
    assert [r.text for r in records] == [text]
    assert len(text.encode()) > len(text)


BAD_RECORDS = {
    "content_length_too_long": (lambda: synthetic_wet.frame_record(
        "a short body", content_length=300), "content_length_mismatch"),
    "content_length_too_short": (lambda: synthetic_wet.frame_record(
        "a body longer than declared", content_length=4), "content_length_mismatch"),
    "missing_content_length": (lambda: synthetic_wet.frame_record(
        "body", omit=["Content-Length"]), "missing_content_length"),
    "missing_record_id": (lambda: synthetic_wet.frame_record(
        "body", omit=["WARC-Record-ID"]), "missing_record_id"),
    "missing_warc_type": (lambda: synthetic_wet.frame_record(
        "body", omit=["WARC-Type"]), "missing_warc_type"),
    "empty_record": (lambda: synthetic_wet.frame_record(""), "empty_record"),
    "invalid_utf8": (lambda: synthetic_wet.frame_record(b"caf\xe9 \xff\xfe"), "invalid_utf8"),
    "garbage_between_records": (lambda: b"this line is not WARC\r\n" * 4, "invalid_warc_header"),
}


@pytest.mark.parametrize("gzipped", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_record_is_counted_and_later_records_still_read(tmp_path, case, gzipped):
    make_bad, reason = BAD_RECORDS[case]
    good = _docs(seed=5, count=3)
    path = _write(tmp_path / "bad.wet", [good[0], make_bad(), good[1], good[2]], gzipped)
    records, stats = _read(path)
    expected_texts = [d["block"] for d in synthetic_wet.synthetic_documents(5, 3)]
    assert [r.text for r in records] == expected_texts
    assert stats.malformed == {reason: 1}


def test_truncated_gzip_member_in_the_middle(tmp_path):
    good = [gzip.compress(r) for r in _docs(seed=6, count=3)]
    path = tmp_path / "t.wet.gz"
    path.write_bytes(good[0] + good[1][: len(good[1]) // 2] + good[2])
    records, stats = _read(path)
    texts = [d["block"] for d in synthetic_wet.synthetic_documents(6, 3)]
    assert [r.text for r in records] == [texts[0], texts[2]]
    assert sum(stats.malformed.values()) == 1
    assert set(stats.malformed) <= {"gzip_error", "content_length_mismatch"}


def test_file_truncated_at_the_end(tmp_path):
    path = tmp_path / "t.wet.gz"
    path.write_bytes(b"".join(gzip.compress(r) for r in _docs(seed=7, count=3))[:-25])
    records, stats = _read(path)
    assert len(records) == 2
    assert stats.malformed == {"truncated_record": 1}


def test_oversized_record_is_skipped_unread(tmp_path):
    good = _docs(seed=8, count=2)
    huge = synthetic_wet.frame_record(b"x" * (100 * 1024 * 1024))
    path = _write(tmp_path / "big.wet.gz", [good[0], huge, good[1]], True)
    records, stats = _read(path)
    assert len(records) == 2
    assert stats.malformed == {"record_too_large": 1}


def test_oversized_record_kept_when_limit_raised(tmp_path):
    big = synthetic_wet.frame_record("word " * 5000)
    path = _write(tmp_path / "big.wet", [big], False)
    assert len(_read(path, max_record_bytes=10)[0]) == 0
    assert len(_read(path, max_record_bytes=1 << 20)[0]) == 1


@pytest.mark.parametrize("content", [b"just some text\nnot an archive\n" * 50,
                                     gzip.compress(b"plain gzip text, no WARC\n" * 50)])
def test_not_warc_file_is_counted(tmp_path, content):
    path = tmp_path / "x.wet.gz"
    path.write_bytes(content)
    records, stats = _read(path)
    assert records == []
    assert stats.malformed == {"not_warc": 1}


def test_garbage_before_first_record(tmp_path):
    good = _docs(seed=9, count=2)
    path = _write(tmp_path / "g.wet", [b"junk\r\n" * 3] + good, False)
    records, stats = _read(path)
    assert len(records) == 2
    assert stats.malformed == {"invalid_warc_header": 1}


def test_missing_file_is_counted(tmp_path):
    records, stats = _read(tmp_path / "nope.wet.gz")
    assert records == [] and stats.malformed == {"unreadable_file": 1}


def test_interleave_round_robins_files_and_reads_each_once(tmp_path):
    paths = []
    for i in range(3):
        p = str(tmp_path / f"f{i}.wet.gz")
        synthetic_wet.write_wet_file(p, seed=i, count=4 + i)
        paths.append(p)
    stats = wet.ReadStats()
    records = list(wet.interleave_files(paths, stats, cycle_length=2))
    assert len(records) == 4 + 5 + 6
    assert len({r.record_id for r in records}) == 15
    # The first two documents come from the first two files: files are mixed, not chained.
    assert records[0].source.split(":")[0] != records[1].source.split(":")[0]
