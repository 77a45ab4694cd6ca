"""bench/sql-step helper: DuckDB generates the CSV data set and is the peer.

    duckdb_peer.py generate BUCKET ORDERS_ROWS CUSTOMERS_ROWS
    duckdb_peer.py convert BUCKET
    duckdb_peer.py aggregate BUCKET

generate: (once) writes s3://BUCKET/sql-step/csv/{orders,customers}/*.csv with DuckDB.
convert:  the peer of our conversion step: every CSV file read and written back as Parquet
          (s3://BUCKET/sql-step/duckdb/{orders,customers}.parquet).
aggregate: the peer of our join+aggregate step, over those Parquet files, result written as
          Parquet too. Each prints one JSON object (seconds, rows, and the aggregate's result).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "e2e", "py"))
from read_table import duckdb_connect  # noqa: E402

AGGREGATE = """
SELECT c.country, count(*) AS orders, sum(o.amount) AS revenue, count(DISTINCT o.customer_id) AS buyers
FROM {orders} o JOIN {customers} c ON c.id = o.customer_id
WHERE o.status <> 'cancelled'
GROUP BY c.country
"""


def generate(con, bucket, orders, customers):
    base = f"s3://{bucket}/sql-step/csv"
    existing = con.execute(f"SELECT count(*) FROM glob('{base}/orders/*.csv')").fetchone()[0]
    if existing:
        print(json.dumps({"generated": False}))
        return
    con.execute("SET threads = 2")
    con.execute(
        f"""COPY (SELECT i AS id, 'customer ' || i AS name,
                         (['DE','FR','NL','PL','ES','IT','SE','DK'])[1 + i % 8] AS country,
                         TIMESTAMP '2024-01-01' + to_seconds(i) AS signed_up
                  FROM range({customers}) t(i))
            TO '{base}/customers/customers.csv' (FORMAT csv, HEADER)"""
    )
    con.execute(
        f"""COPY (SELECT i AS id, (i * 7919) % {customers} AS customer_id,
                         round(((i * 104729) % 100000) / 100.0, 2)::DECIMAL(10,2) AS amount,
                         DATE '2024-01-01' + ((i % 700)::INT) AS ordered_on,
                         (['paid','shipped','delivered','cancelled'])[1 + i % 4] AS status,
                         'note ' || md5(i::VARCHAR) AS note
                  FROM range({orders}) t(i))
            TO '{base}/orders' (FORMAT csv, HEADER, PER_THREAD_OUTPUT, FILE_SIZE_BYTES '128MB')"""
    )
    print(json.dumps({"generated": True}))


def timed(fn):
    start = time.monotonic()
    out = fn()
    return time.monotonic() - start, out


def main(cmd, bucket, *rest):
    con = duckdb_connect()
    csv = f"s3://{bucket}/sql-step/csv"
    pq = f"s3://{bucket}/sql-step/duckdb"
    if cmd == "generate":
        generate(con, bucket, int(rest[0]), int(rest[1]))
        return
    if cmd == "convert":
        def run():
            rows = 0
            # the same column types as our step declares
            types = {
                "orders": "{'id': 'BIGINT', 'customer_id': 'BIGINT', 'amount': 'DECIMAL(10,2)', 'ordered_on': 'DATE', 'status': 'VARCHAR', 'note': 'VARCHAR'}",
                "customers": "{'id': 'BIGINT', 'name': 'VARCHAR', 'country': 'VARCHAR', 'signed_up': 'TIMESTAMP'}",
            }
            for t in ("orders", "customers"):
                con.execute(
                    f"COPY (SELECT * FROM read_csv('{csv}/{t}/*.csv', header=true, columns={types[t]})) TO '{pq}/{t}.parquet' (FORMAT parquet)"
                )
                rows += con.execute(f"SELECT count(*) FROM read_parquet('{pq}/{t}.parquet')").fetchone()[0]
            return rows
        seconds, rows = timed(run)
        print(json.dumps({"seconds": seconds, "rows": rows}))
        return
    if cmd == "aggregate":
        query = AGGREGATE.format(orders=f"read_parquet('{pq}/orders.parquet')", customers=f"read_parquet('{pq}/customers.parquet')")
        seconds, _ = timed(lambda: con.execute(f"COPY ({query}) TO '{pq}/revenue.parquet' (FORMAT parquet)"))
        result = con.execute(
            f"SELECT country, orders, revenue::VARCHAR, buyers FROM read_parquet('{pq}/revenue.parquet') ORDER BY country"
        ).fetchall()
        print(json.dumps({"seconds": seconds, "result": [list(r) for r in result]}))
        return
    sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(*sys.argv[1:])
