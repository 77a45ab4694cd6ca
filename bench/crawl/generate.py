"""Generates the crawl benchmark data set in the local MinIO (idempotent).

    generate.py BUCKET

20,000 objects, ~2.5 GB: Parquet, CSV and JSON tables (see TABLES). Each table is a folder under
`bench/` with Hive `dt=` partitions; files of one table share a schema (a few variants of the
content are uploaded many times). Connection settings from the env file `e2e/up` writes.
A marker object `bench/_COMPLETE` makes re-runs skip the upload.
"""

import concurrent.futures as cf
import io
import json
import os
import sys

import boto3
import botocore.config
import datetime
import random
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

# (name, format, files, rows per file, extra columns)
TABLES = [
    ("pq_orders", "parquet", 2500, 2000, 4),
    ("pq_events", "parquet", 2500, 2000, 8),
    ("pq_metrics", "parquet", 2500, 2000, 12),
    ("pq_nested", "parquet", 2500, 2000, 6),
    ("csv_sales", "csv", 2000, 800, 5),
    ("csv_users", "csv", 2000, 800, 8),
    ("csv_items", "csv", 2000, 800, 3),
    ("json_clicks", "json", 2000, 600, 4),
    ("json_logs", "json", 2000, 600, 7),
]
VARIANTS = 4
PARTITIONS = 25


def table_data(name, rows, extra, seed):
    rng = random.Random(seed)
    start = datetime.date(2024, 1, 1)
    cols = {
        "id": pa.array([rng.randrange(1 << 40) for _ in range(rows)], pa.int64()),
        "amount": pa.array([rng.random() * 1000 for _ in range(rows)]),
        "label": pa.array([f"{name}-{rng.randrange(1 << 30)}" for _ in range(rows)]),
        "day": pa.array([start + datetime.timedelta(days=rng.randrange(365)) for _ in range(rows)]),
    }
    for j in range(extra):
        if j % 3 == 0:
            cols[f"c{j}"] = pa.array([rng.randrange(1000) for _ in range(rows)], pa.int32())
        elif j % 3 == 1:
            cols[f"c{j}"] = pa.array([rng.random() for _ in range(rows)])
        else:
            cols[f"c{j}"] = pa.array([f"v{rng.randrange(1 << 20)}" for _ in range(rows)])
    if name == "pq_nested":
        cols["info"] = pa.StructArray.from_arrays(
            [pa.array([rng.random() for _ in range(rows)]), pa.array([f"h{i % 7}" for i in range(rows)])],
            names=["cpu", "host"],
        )
        cols["tags"] = pa.array([[f"t{i % 5}", "x"] for i in range(rows)])
    return pa.table(cols)


def encode(fmt, table):
    buf = io.BytesIO()
    if fmt == "parquet":
        pq.write_table(table, buf, compression="snappy")
    elif fmt == "csv":
        pacsv.write_csv(table, buf)
    else:
        for row in table.to_pylist():
            buf.write((json.dumps(row, default=str) + "\n").encode())
    return buf.getvalue()


def main(bucket):
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["LAKEFORM_S3_ENDPOINT"],
        region_name=os.environ["LAKEFORM_S3_REGION"],
        aws_access_key_id=os.environ["LAKEFORM_S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["LAKEFORM_S3_SECRET_KEY"],
        config=botocore.config.Config(max_pool_connections=32, s3={"addressing_style": "path"}),
    )
    complete = False
    try:
        s3.head_object(Bucket=bucket, Key="bench/_COMPLETE")
        complete = True
    except Exception:
        pass
    try:
        s3.create_bucket(Bucket=bucket)
    except Exception:
        pass
    jobs = []
    total = 0
    footers = 0
    per_format = {}
    for t, (name, fmt, files, rows, extra) in enumerate(TABLES):
        bodies = [encode(fmt, table_data(name, rows, extra, t * 100 + v)) for v in range(VARIANTS)]
        ext = {"parquet": "parquet", "csv": "csv", "json": "jsonl"}[fmt]
        for i in range(files):
            key = f"bench/{name}/dt=2024-01-{1 + i % PARTITIONS:02d}/part-{i:05d}.{ext}"
            body = bodies[i % VARIANTS]
            total += len(body)
            f = per_format.setdefault(fmt, {"objects": 0, "bytes": 0})
            f["objects"] += 1
            f["bytes"] += len(body)
            if fmt == "parquet":
                footers += pq.read_metadata(io.BytesIO(body)).serialized_size
            jobs.append((key, body))
    stats = {"objects": len(jobs), "bytes": total, "parquet_footer_bytes": footers, "formats": per_format}
    if complete:
        print(f"s3://{bucket}/bench is already complete", file=sys.stderr)
        print(json.dumps(stats))
        return
    print(f"uploading {len(jobs)} objects, {total / 1e9:.2f} GB", file=sys.stderr)
    with cf.ThreadPoolExecutor(16) as pool:
        for n, _ in enumerate(pool.map(lambda kb: s3.put_object(Bucket=bucket, Key=kb[0], Body=kb[1]), jobs)):
            if n % 2000 == 0:
                print(f"  {n} uploaded", file=sys.stderr)
    s3.put_object(Bucket=bucket, Key="bench/_COMPLETE", Body=json.dumps(stats).encode())
    print(f"done: {len(jobs)} objects, {total / 1e9:.2f} GB", file=sys.stderr)
    print(json.dumps(stats))


if __name__ == "__main__":
    main(sys.argv[1])
