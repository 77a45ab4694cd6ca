"""Row count and column sums of Iceberg tables, read by clients we did not write (issue 7).

    table_stats.py pyiceberg NAMESPACE TABLE...
    table_stats.py duckdb NAMESPACE TABLE...

Prints one JSON object: {TABLE: {"rows": N, "sums": {COLUMN: SUM}, "nulls": {COLUMN: N},
"schema_id": ID}} with a sum for every top-level numeric column and a null count for every
top-level column. Connection settings as for read_table.py (the env file `e2e/up` writes).

With LAKEFORM_S3_IGNORE_CATALOG_ENDPOINT=1 (pyiceberg only) the table's files are read through
LAKEFORM_S3_ENDPOINT whatever S3 endpoint the catalog hands out: a managed lake's catalog names
its MinIO by a cluster DNS name this host cannot resolve (the test reaches it by Service IP).
"""

import json
import os
import sys

from read_table import duckdb_connect, env, sql_str


def pyiceberg_stats(namespace, tables):
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyiceberg.catalog import load_catalog
    from pyiceberg.table import StaticTable

    s3 = {
        "s3.endpoint": env("LAKEFORM_S3_ENDPOINT"),
        "s3.region": env("LAKEFORM_S3_REGION"),
        "s3.access-key-id": env("LAKEFORM_S3_ACCESS_KEY"),
        "s3.secret-access-key": env("LAKEFORM_S3_SECRET_KEY"),
        "s3.path-style-access": "true",
    }
    catalog = load_catalog(
        "lakeform",
        **{
            "type": "rest",
            "uri": env("LAKEFORM_CATALOG_URI"),
            "warehouse": env("LAKEFORM_CATALOG_WAREHOUSE"),
            **s3,
        },
    )
    own_endpoint = os.environ.get("LAKEFORM_S3_IGNORE_CATALOG_ENDPOINT") == "1"
    out = {}
    for name in tables:
        tbl = catalog.load_table((namespace, name))
        if own_endpoint:
            tbl = StaticTable.from_metadata(tbl.metadata_location, properties=s3)
        data = tbl.scan().to_arrow()
        sums, nulls = {}, {}
        for field in data.schema:
            col = data.column(field.name)
            nulls[field.name] = col.null_count
            t = field.type
            if pa.types.is_integer(t) or pa.types.is_floating(t):
                s = pc.sum(col).as_py()
                sums[field.name] = float(s) if s is not None else 0.0
        out[name] = {
            "rows": data.num_rows,
            "sums": sums,
            "nulls": nulls,
            "schema_id": tbl.metadata.current_schema_id,
        }
    return out


def duckdb_stats(namespace, tables):
    con = duckdb_connect()
    con.execute(
        f"""ATTACH {sql_str(env('LAKEFORM_CATALOG_WAREHOUSE'))} AS lake (
              TYPE iceberg,
              ENDPOINT {sql_str(env('LAKEFORM_CATALOG_URI'))},
              AUTHORIZATION_TYPE 'none',
              ACCESS_DELEGATION_MODE 'none')"""
    )
    numeric = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "REAL")
    out = {}
    for name in tables:
        ref = f'lake."{namespace}"."{name}"'
        cols = con.execute(f"DESCRIBE SELECT * FROM {ref}").fetchall()
        exprs = ["count(*)"]
        sums = [c[0] for c in cols if c[1].upper() in numeric or c[1].upper().startswith("DECIMAL")]
        exprs += [f'coalesce(sum("{c}"), 0)::DOUBLE' for c in sums]
        exprs += [f'count(*) - count("{c[0]}")' for c in cols]
        row = con.execute(f"SELECT {', '.join(exprs)} FROM {ref}").fetchone()
        out[name] = {
            "rows": row[0],
            "sums": dict(zip(sums, row[1 : 1 + len(sums)])),
            "nulls": dict(zip([c[0] for c in cols], row[1 + len(sums) :])),
        }
    return out


def main(argv):
    if len(argv) < 4 or argv[1] not in ("pyiceberg", "duckdb"):
        sys.exit(__doc__)
    func = pyiceberg_stats if argv[1] == "pyiceberg" else duckdb_stats
    json.dump(func(argv[2], argv[3:]), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
