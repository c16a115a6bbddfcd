"""Rows per (customer, dt) of a lake table, as DuckDB and pyarrow read it.

Usage: lake_counts.py DATA_DIR  ->  {"duckdb": {"acme|2024-01-01": 12, ...}, "pyarrow": {...}}
Both read the Parquet files directly (customer and dt are stored in the files); names
starting with `.` or `_` are skipped as every engine skips them.
"""
import json
import sys

import duckdb
import pyarrow.dataset as ds

data = sys.argv[1]
out = {}
con = duckdb.connect()
rows = con.sql(
    f"select customer, cast(dt as varchar), count(*) from "
    f"read_parquet('{data}/**/*.parquet', hive_partitioning = false) group by all"
).fetchall()
out["duckdb"] = {f"{c}|{d}": n for c, d, n in rows}
table = ds.dataset(data, format="parquet").to_table(columns=["customer", "dt"])
grouped = table.group_by(["customer", "dt"]).aggregate([([], "count_all")])
out["pyarrow"] = {
    f"{c}|{d}": n
    for c, d, n in zip(
        grouped["customer"].to_pylist(),
        [str(x) for x in grouped["dt"].to_pylist()],
        grouped["count_all"].to_pylist(),
    )
}
print(json.dumps(out, sort_keys=True))
