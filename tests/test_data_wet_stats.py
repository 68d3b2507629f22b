"""wet_stats: one JSON object with records, kept, drops and malformed counts by reason."""
import json
import subprocess
import sys

from data_pipelines import synthetic_wet, wet_stats
from data_pipelines.filters import FilterConfig


class ByteEncoder:
    eod_id = 1

    def encode_document(self, text):
        return [b + 2 for b in text.encode("utf-8")]


def _files(tmp_path):
    good = str(tmp_path / "good.wet.gz")
    synthetic_wet.write_wet_file(good, seed=11, count=21)
    bad = tmp_path / "bad.wet"
    with open(bad, "wb") as out:
        synthetic_wet.write_members(out, [
            synthetic_wet.frame_record("English text " * 40, language="eng"),
            synthetic_wet.frame_record(b"\xff\xfe broken", language="eng"),
            synthetic_wet.frame_record("", language="eng"),
        ], gzipped=False)
    not_warc = tmp_path / "notes.txt"
    not_warc.write_text("not an archive\n" * 10)
    return [good, str(bad), str(not_warc)]


def test_collect_stats_counts_everything(tmp_path):
    files = _files(tmp_path)
    result = wet_stats.collect_stats(files, FilterConfig(min_paragraph_words=20), ByteEncoder())
    assert result["records_read"] == 22 + 3
    assert result["records_by_type"] == {"conversion": 24, "warcinfo": 1}
    assert result["malformed_records"] == {"empty_record": 1, "invalid_utf8": 1, "not_warc": 1}
    # 21 synthetic documents, every 7th German or French, plus the one good English record.
    assert result["documents_kept"] + result["documents_dropped_total"] == 22
    assert result["documents_dropped"]["language_header"] + \
        result["documents_dropped"].get("language_identified", 0) == 3
    assert result["tokens"] > result["documents_kept"] * 100


def test_cli_prints_one_json_object(tmp_path):
    files = _files(tmp_path)
    out = subprocess.run([sys.executable, "-m", "data_pipelines.wet_stats",
                          "--min_paragraph_words=20", *files],
                         capture_output=True, text=True, check=True, timeout=60)
    result = json.loads(out.stdout)
    assert result["tokens"] is None and result["files"] == 3
    assert result["malformed_total"] == 3
    assert "invalid_utf8" in out.stderr  # Each malformed record is logged with its reason.
