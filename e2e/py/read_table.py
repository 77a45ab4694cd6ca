"""Read an Iceberg table back with a client we did not write (issue 4, DESIGN.md §5).

    read_table.py pyiceberg NAMESPACE TABLE
    read_table.py pyiceberg-files NAMESPACE TABLE
    read_table.py duckdb-scan METADATA_LOCATION
    read_table.py duckdb-rest NAMESPACE TABLE

Prints the rows as one JSON array on stdout, sorted by the first column, with timestamps as
ISO-8601 strings. `pyiceberg-files` prints one row per live data file instead: its
`file_path`, `partition` values, `record_count` and `spec_id`, and the table's current
partition `spec` (`name`, `source` column, `transform` of each field). Connection settings come from the env file that `e2e/up` writes:
LAKEFORM_CATALOG_URI, LAKEFORM_CATALOG_WAREHOUSE, LAKEFORM_S3_ENDPOINT, LAKEFORM_S3_REGION,
LAKEFORM_S3_ACCESS_KEY, LAKEFORM_S3_SECRET_KEY.

DuckDB must never download anything: auto-install/auto-load are switched off and the
extensions are LOADed from the files that the pinned `duckdb-extension-*` packages ship, at
`<package>/extensions/v<duckdb version>/<name>.duckdb_extension`. The iceberg extension needs
the avro extension (it reads the manifests with it), so `duckdb-extension-avro` must be
installed too.
"""

import datetime
import decimal
import importlib
import json
import os
import sys
from urllib.parse import urlparse


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"read_table.py: {name} is not set (source $LAKEFORM_CACHE/run/env)")
    return value


def to_json(value):
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit(rows):
    rows = sorted(rows, key=lambda r: next(iter(r.values())))
    json.dump(rows, sys.stdout, default=to_json)
    sys.stdout.write("\n")


def pyiceberg_catalog():
    from pyiceberg.catalog import load_catalog

    return load_catalog(
        "lakeform",
        **{
            "type": "rest",
            "uri": env("LAKEFORM_CATALOG_URI"),
            "warehouse": env("LAKEFORM_CATALOG_WAREHOUSE"),
            "s3.endpoint": env("LAKEFORM_S3_ENDPOINT"),
            "s3.region": env("LAKEFORM_S3_REGION"),
            "s3.access-key-id": env("LAKEFORM_S3_ACCESS_KEY"),
            "s3.secret-access-key": env("LAKEFORM_S3_SECRET_KEY"),
            "s3.path-style-access": "true",
        },
    )


def read_pyiceberg(namespace, table):
    tbl = pyiceberg_catalog().load_table((namespace, table))
    emit(tbl.scan().to_arrow().to_pylist())


def read_pyiceberg_files(namespace, table):
    tbl = pyiceberg_catalog().load_table((namespace, table))
    schema = tbl.schema()
    spec = [
        {
            "name": f.name,
            "source": schema.find_column_name(f.source_id),
            "transform": str(f.transform),
        }
        for f in tbl.spec().fields
    ]
    emit(
        [
            {
                "file_path": f["file_path"],
                "partition": f["partition"],
                "record_count": f["record_count"],
                "spec_id": f["spec_id"],
                "spec": spec,
            }
            for f in tbl.inspect.files().to_pylist()
        ]
    )


def duckdb_connect():
    import duckdb

    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    for name in ("httpfs", "avro", "iceberg"):
        package = f"duckdb_extension_{name}"
        try:
            module = importlib.import_module(package)
        except ImportError:
            sys.exit(f"read_table.py: python package {package.replace('_', '-')} is not installed")
        path = os.path.join(
            os.path.dirname(module.__file__),
            "extensions",
            f"v{duckdb.__version__}",
            f"{name}.duckdb_extension",
        )
        if not os.path.isfile(path):
            sys.exit(f"read_table.py: {path} missing (package/duckdb version mismatch?)")
        con.execute(f"LOAD '{path}'")

    endpoint = urlparse(env("LAKEFORM_S3_ENDPOINT"))
    use_ssl = "true" if endpoint.scheme == "https" else "false"
    con.execute(
        f"""CREATE SECRET lakeform_s3 (
              TYPE s3,
              KEY_ID {sql_str(env('LAKEFORM_S3_ACCESS_KEY'))},
              SECRET {sql_str(env('LAKEFORM_S3_SECRET_KEY'))},
              REGION {sql_str(env('LAKEFORM_S3_REGION'))},
              ENDPOINT {sql_str(endpoint.netloc)},
              URL_STYLE 'path',
              USE_SSL {use_ssl})"""
    )
    return con


def sql_str(value):
    return "'" + value.replace("'", "''") + "'"


def fetch_dicts(con, sql):
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def read_duckdb_scan(metadata_location):
    con = duckdb_connect()
    emit(fetch_dicts(con, f"SELECT * FROM iceberg_scan({sql_str(metadata_location)})"))


def read_duckdb_rest(namespace, table):
    con = duckdb_connect()
    con.execute(
        f"""ATTACH {sql_str(env('LAKEFORM_CATALOG_WAREHOUSE'))} AS lake (
              TYPE iceberg,
              ENDPOINT {sql_str(env('LAKEFORM_CATALOG_URI'))},
              AUTHORIZATION_TYPE 'none',
              ACCESS_DELEGATION_MODE 'none')"""
    )
    emit(fetch_dicts(con, f'SELECT * FROM lake."{namespace}"."{table}"'))


def main(argv):
    modes = {
        "pyiceberg": (read_pyiceberg, 2),
        "pyiceberg-files": (read_pyiceberg_files, 2),
        "duckdb-scan": (read_duckdb_scan, 1),
        "duckdb-rest": (read_duckdb_rest, 2),
    }
    if len(argv) < 2 or argv[1] not in modes or len(argv) - 2 != modes[argv[1]][1]:
        sys.exit(__doc__)
    func, _ = modes[argv[1]]
    func(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
