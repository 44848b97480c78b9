from __future__ import annotations

import gzip

import pandas as pd
import pytest

from sine.data.logs import LogColumns, fingerprint, read_log
from sine.errors import DataError


def write(path, text: str):
    path.write_text(text)
    return path


def test_reads_csv_sorted_by_user_then_time_keeping_extra_columns(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp,category\n"
                 "b,x,5,c1\na,y,3,c2\na,z,1,c1\nb,w,2,c3\n")
    frame = read_log(path)
    assert list(frame.columns) == ["user_id", "item_id", "timestamp", "category"]
    assert frame[["user_id", "item_id"]].values.tolist() == [["a", "z"], ["a", "y"], ["b", "w"], ["b", "x"]]
    assert frame["category"].tolist() == ["c1", "c2", "c3", "c1"]


def test_ids_stay_strings_with_leading_zeros(tmp_path):
    frame = read_log(write(tmp_path / "log.csv", "user_id,item_id,timestamp\n007,0042,1\n"))
    assert frame.loc[0, "user_id"] == "007"
    assert frame.loc[0, "item_id"] == "0042"


def test_equal_timestamps_keep_file_order(tmp_path):
    frame = read_log(write(tmp_path / "log.csv", "user_id,item_id,timestamp\nu,c,1\nu,a,1\nu,b,1\n"))
    assert frame["item_id"].tolist() == ["c", "a", "b"]


def test_tsv_gzip_and_parquet_give_the_same_clicks_and_fingerprint(tmp_path):
    frame = pd.DataFrame({"user_id": ["1", "1", "2"], "item_id": ["9", "8", "9"], "timestamp": [1, 2, 3]})
    csv = tmp_path / "log.csv"
    frame.to_csv(csv, index=False)
    tsv = tmp_path / "log.tsv.gz"
    with gzip.open(tsv, "wt") as handle:
        frame.to_csv(handle, sep="\t", index=False)
    parquet = tmp_path / "log.parquet"
    frame.to_parquet(parquet)
    loaded = [read_log(p) for p in (csv, tsv, parquet)]
    for other in loaded[1:]:
        pd.testing.assert_frame_equal(loaded[0], other)
    assert len({fingerprint(f) for f in loaded}) == 1


def test_fingerprint_changes_with_the_clicks(tmp_path):
    a = read_log(write(tmp_path / "a.csv", "user_id,item_id,timestamp\nu,a,1\nu,b,2\n"))
    b = read_log(write(tmp_path / "b.csv", "user_id,item_id,timestamp\nu,a,1\nu,c,2\n"))
    assert fingerprint(a) != fingerprint(b)


def test_configurable_column_names(tmp_path):
    path = write(tmp_path / "log.csv", "uid,sku,ts\nu,a,1\n")
    frame = read_log(path, LogColumns(user="uid", item="sku", timestamp="ts"))
    assert list(frame.columns) == ["user_id", "item_id", "timestamp"]


def test_dates_are_parsed_to_unix_seconds(tmp_path):
    frame = read_log(write(tmp_path / "log.csv",
                           "user_id,item_id,timestamp\nu,a,2024-01-02T00:00:00Z\nu,b,2024-01-01\n"))
    assert frame["item_id"].tolist() == ["b", "a"]
    assert frame["timestamp"].iloc[0] == pytest.approx(1704067200.0)


def test_missing_column_names_what_the_file_has(tmp_path):
    path = write(tmp_path / "log.csv", "user,item_id,timestamp\nu,a,1\n")
    with pytest.raises(DataError, match=r"missing column\(s\) user_id.*the file has: user, item_id"):
        read_log(path)


def test_empty_file_and_header_only(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_log(write(tmp_path / "empty.csv", ""))
    with pytest.raises(DataError, match="no rows"):
        read_log(write(tmp_path / "header.csv", "user_id,item_id,timestamp\n"))


def test_malformed_row_reports_its_line(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\nu,a,1\nu,b,2\nu,c,3,extra\n")
    with pytest.raises(DataError, match="line 4"):
        read_log(path)


def test_unparsable_timestamp_reports_its_line(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\nu,a,1\nu,b,yesterday\n")
    with pytest.raises(DataError, match=r"'yesterday' at line 3"):
        read_log(path)


def test_empty_item_id_reports_its_line(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\nu,a,1\nu,,2\n")
    with pytest.raises(DataError, match="empty item_id at line 3"):
        read_log(path)


def test_missing_file_and_bad_parquet(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_log(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="Parquet"):
        read_log(write(tmp_path / "bad.parquet", "not parquet"))
