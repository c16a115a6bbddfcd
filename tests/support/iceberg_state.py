"""An Iceberg table of a citrine lake as pyiceberg reads it, for the integration tests.

Usage:
  iceberg_state.py local LAKE_DIR TABLE      the local catalog's metadata file (pyiceberg's
                                             StaticTable), and the folder's version-hint.text
  iceberg_state.py glue DATABASE TABLE       through pyiceberg's Glue catalog (endpoint and
                                             credentials from the environment)
  -> JSON: {snapshots: [{id, operation, run_id, marker}], current_run, rows, distinct_rows,
            counts: {"customer|dt": n}, columns: [names], data_files: n, hint_matches}
"""
import json
import os
import sys


def load(kind, where, table):
    if kind == "local":
        from pyiceberg.table import StaticTable

        with open(os.path.join(where, "_citrine/catalog", f"{table}.json")) as f:
            location = json.load(f)["metadata_location"]
        hint = os.path.join(where, "data", table, "metadata", "version-hint.text")
        with open(hint) as f:
            version = f.read().strip()
        matches = location.endswith(f"/v{version}.metadata.json")
        return StaticTable.from_metadata(location), matches
    from pyiceberg.catalog.glue import GlueCatalog

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    catalog = GlueCatalog(
        "glue",
        **{
            "glue.endpoint": endpoint,
            "glue.region": os.environ.get("AWS_REGION", "us-east-1"),
            "glue.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
            "glue.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
            "s3.endpoint": endpoint,
            "s3.region": os.environ.get("AWS_REGION", "us-east-1"),
            "s3.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
            "s3.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
            "s3.force-virtual-addressing": False,
        },
    )
    return catalog.load_table(f"{where}.{table}"), True


def main(kind, where, table):
    t, hint_matches = load(kind, where, table)
    snapshots = []
    for s in t.metadata.snapshots:
        props = s.summary.additional_properties if s.summary else {}
        snapshots.append({
            "id": s.snapshot_id,
            "operation": s.summary.operation.value if s.summary else None,
            "run_id": props.get("citrine.run-id"),
            "marker": props.get("citrine.marker"),
        })
    current = t.metadata.current_snapshot()
    arrow = t.scan().to_arrow()
    pairs = set(zip(arrow["source_file"].to_pylist(), arrow["row_num"].to_pylist()))
    counts = {}
    for c, d in zip(arrow["customer"].to_pylist(), arrow["dt"].to_pylist()):
        counts[f"{c}|{d}"] = counts.get(f"{c}|{d}", 0) + 1
    files = list(t.scan().plan_files())
    return {
        "snapshots": snapshots,
        "current_run": (current.summary.additional_properties.get("citrine.run-id")
                        if current and current.summary else None),
        "rows": arrow.num_rows,
        "distinct_rows": len(pairs),
        "counts": counts,
        "columns": arrow.schema.names,
        "data_files": len(files),
        "hint_matches": hint_matches,
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:]), sort_keys=True, default=str))
