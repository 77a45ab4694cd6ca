"""Rows and columns of local data files as DuckDB reads them with its defaults (issue 19).

    file_stats.py FILE...

Prints one JSON object: {FILE: {"rows": N, "columns": N}} — `read_csv_auto` for .csv/.tsv,
`read_json_auto` for .json. DuckDB is the reference reader the crawler's tables are compared
with; a file DuckDB cannot read is reported as {"error": "..."}.
"""

import json
import sys

import duckdb


def stats(con, path):
    reader = "read_json_auto" if path.endswith(".json") else "read_csv_auto"
    quoted = "'" + path.replace("'", "''") + "'"
    rel = con.sql(f"SELECT * FROM {reader}({quoted})")
    rows = con.sql(f"SELECT count(*) FROM {reader}({quoted})").fetchone()[0]
    return {"rows": rows, "columns": len(rel.columns)}


def main():
    con = duckdb.connect()
    out = {}
    for path in sys.argv[1:]:
        try:
            out[path] = stats(con, path)
        except duckdb.Error as e:
            out[path] = {"error": str(e)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
