"""The peer: DuckDB infers the schema of every table of the benchmark from the same MinIO.

    duckdb_infer.py BUCKET TABLE...

For each table folder `bench/TABLE/`: `DESCRIBE` over all its files with `union_by_name`
(so every file's footer/sample is read, as the crawler does) and Hive partitioning. Prints
one JSON object: seconds (wall time of all DESCRIBEs), bytes and requests (from DuckDB's HTTP
log), and the columns found per table.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "e2e", "py"))
from read_table import duckdb_connect  # noqa: E402


def reader(bucket, table):
    base = f"s3://{bucket}/bench/{table}/*/*"
    if table.startswith("pq_"):
        return f"read_parquet('{base}.parquet', union_by_name=true, hive_partitioning=true)"
    if table.startswith("csv_"):
        return f"read_csv('{base}.csv', union_by_name=true, hive_partitioning=true)"
    return f"read_json('{base}.jsonl', union_by_name=true, hive_partitioning=true, format='newline_delimited')"


def main(bucket, tables):
    con = duckdb_connect()
    con.execute("CALL enable_logging('HTTP')")
    columns = {}
    start = time.monotonic()
    for t in tables:
        columns[t] = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader(bucket, t)}").fetchall()]
    seconds = time.monotonic() - start
    rows = con.execute(
        """SELECT request.type, count(*), sum(TRY_CAST(response.headers['Content-Length'] AS BIGINT))
           FROM duckdb_logs_parsed('HTTP') GROUP BY ALL"""
    ).fetchall()
    requests = {r[0]: r[1] for r in rows}
    data_bytes = sum((r[2] or 0) for r in rows if r[0] == "GET")
    json.dump({"seconds": seconds, "bytes": data_bytes, "requests": requests, "columns": columns}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
