"""Prints the bench/crawl figures from the run folder `run` leaves behind."""

import json
import os
import re
import sys

work = sys.argv[1]
dataset = json.load(open(os.path.join(work, "dataset.json")))
ours = json.load(open(os.path.join(work, "ours.json")))
err = open(os.path.join(work, "ours.err")).read()
start, end = map(float, open(os.path.join(work, "ours.time")).read().split())
duck = json.load(open(os.path.join(work, "duckdb.json")))
tables = json.loads(re.search(r"^\[.*?^\]", err, re.S | re.M).group(0))
gets = int(re.search(r"S3 requests: (\d+) GET", err).group(1))

ours_s = end - start
objects = dataset["objects"]
pq = dataset["formats"].get("parquet", {"objects": 0})
formats = ", ".join(f"{k}: {v['objects']}" for k, v in dataset["formats"].items())
print(f"data set: {objects} objects, {dataset['bytes'] / 1e9:.2f} GB ({formats})")
print(f"tables: ours {len(tables)}, duckdb {len(duck['columns'])}")
mismatch = [t["name"] for t in tables if t["name"] not in duck["columns"]]
if mismatch:
    print(f"tables DuckDB did not describe: {mismatch}")
print(f"ours:   {ours_s:8.2f} s  {ours['bytesRead'] / 1e6:10.1f} MB read  {gets:6d} GETs  {objects / ours_s:8.0f} objects/s")
print(f"duckdb: {duck['seconds']:8.2f} s  {duck['bytes'] / 1e6:10.1f} MB read  {duck['requests'].get('GET', 0):6d} GETs  {objects / duck['seconds']:8.0f} objects/s")
print(f"ratio ours/duckdb: time {ours_s / duck['seconds']:.2f}, bytes {ours['bytesRead'] / max(duck['bytes'], 1):.2f}")
footers = dataset["parquet_footer_bytes"]
pq_ours = json.load(open(os.path.join(work, "ours-parquet.json")))
pq_start, pq_end = map(float, open(os.path.join(work, "ours-parquet.time")).read().split())
pq_duck = json.load(open(os.path.join(work, "duckdb-parquet.json")))
print(f"parquet only ({pq['objects']} files, footers {footers / 1e6:.2f} MB):")
print(f"  ours:   {pq_end - pq_start:8.2f} s  {pq_ours['bytesRead'] / 1e6:8.2f} MB read = {pq_ours['bytesRead'] / max(footers, 1):.3f} x footers")
print(f"  duckdb: {pq_duck['seconds']:8.2f} s  {pq_duck['bytes'] / 1e6:8.2f} MB read = {pq_duck['bytes'] / max(footers, 1):.3f} x footers")
print(f"errors: {len(ours.get('errors', []))}, unclassified: {ours.get('unclassifiedObjects', 0)}")
