"""The state of one citrine table as an outside reader finds it, for the integration tests.

Usage: table_state.py ROOT TABLE [GLUE_DATABASE]  ->  JSON on stdout

ROOT is a local lake folder, or s3://BUCKET/PREFIX (endpoint and credentials from the
environment, as for tests/support/aws_client.py). The catalog is the local catalog file below
ROOT, or GLUE_DATABASE in the Glue Data Catalog.

  rows            rows in every Parquet file below data/TABLE/ (pyarrow) but those a committed
                  rewrite (forget, compact) replaced
  distinct_rows   distinct (source_file, row_num) among them
  counts          rows per "customer|dt"
  markers         committed runs (those with a marker), sorted
  marker_problems what a marker promises and the lake does not hold: a listed file missing
                  (but one a later rewrite replaced), or of another size than the marker says;
                  a marker without its report
  superseded_present  replaced files still in the lake (an Iceberg table keeps them until
                  their snapshots expire; a Hive table deletes them after the rewrite's marker)
  iceberg         whether the table is an Iceberg table
  unlisted        data files no marker lists (half-published, or left by a failed run)
  partitions      "customer|dt" of the files the committed runs' reports list (less those a
                  later forget replaced)
  catalog         "customer|dt" of the catalog's partitions
  journals        keys below _citrine/runs/TABLE/
  reports_without_marker  run reports whose marker is missing
  temporary       dot-named temporary files anywhere below ROOT
  lock            whether the table's lock object exists
"""
import json
import os
import sys

import pyarrow.parquet as pq
from pyarrow import fs


def filesystem(root):
    if root.startswith("s3://"):
        s3 = fs.S3FileSystem(
            endpoint_override=os.environ["AWS_ENDPOINT_URL"],
            scheme="http",
            access_key=os.environ["AWS_ACCESS_KEY_ID"],
            secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            region=os.environ.get("AWS_REGION", "us-east-1"),
            force_virtual_addressing=False,
        )
        return s3, root[len("s3://"):].rstrip("/"), "s3://"
    return fs.LocalFileSystem(), os.path.abspath(root), "file://"


def files(filesystem_, base):
    """{relative key: size} of every file below base."""
    try:
        infos = filesystem_.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True))
    except FileNotFoundError:
        return {}
    return {
        i.path[len(base) + 1:]: i.size for i in infos if i.type == fs.FileType.File
    }


def read_json(filesystem_, path):
    with filesystem_.open_input_stream(path) as f:
        return json.loads(f.read())


def glue_partitions(database, table):
    import boto3

    glue = boto3.client("glue")
    out = set()
    try:
        for page in glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table):
            out |= {"|".join(p["Values"]) for p in page["Partitions"]}
    except glue.exceptions.EntityNotFoundException:
        pass
    return out


def glue_is_iceberg(database, table):
    import boto3

    try:
        t = boto3.client("glue").get_table(DatabaseName=database, Name=table)["Table"]
    except Exception:
        return False
    return t.get("Parameters", {}).get("table_type") == "ICEBERG"


def iceberg_date(value):
    """A partition's `dt` as pyiceberg gives it (days since the epoch, or a date)."""
    import datetime

    if isinstance(value, int):
        return (datetime.date(1970, 1, 1) + datetime.timedelta(days=value)).isoformat()
    return str(value)


def main(root, table, database=None):
    filesystem_, base, scheme = filesystem(root)
    everything = files(filesystem_, base)
    data_prefix = f"data/{table}/"
    complete_prefix = f"complete/{table}/"
    out = {"rows": 0, "distinct_rows": 0, "counts": {}, "marker_problems": [], "unlisted": []}

    completes = {k[len(complete_prefix):]: s for k, s in everything.items() if k.startswith(complete_prefix)}
    markers = sorted(n[: -len(".manifest")] for n in completes if n.endswith(".manifest"))
    out["markers"] = markers
    out["reports_without_marker"] = sorted(
        n[: -len(".json")] for n in completes if n.endswith(".json") and n[: -len(".json")] not in markers
    )
    listed = set()
    partitions = set()
    superseded = set()
    for run in markers:
        if f"{run}.json" in completes:
            report = read_json(filesystem_, f"{base}/{complete_prefix}{run}.json")
            superseded |= set(report.get("supersedes", []))
    pairs = set()
    data = {k: s for k, s in everything.items() if k.startswith(data_prefix)}
    for key in sorted(data):
        if not key.endswith(".parquet") or "/." in key or key in superseded:
            continue
        t = pq.read_table(f"{base}/{key}", columns=["source_file", "row_num", "customer", "dt"], filesystem=filesystem_)
        out["rows"] += t.num_rows
        pairs |= set(zip(t["source_file"].to_pylist(), t["row_num"].to_pylist()))
        for c, d in zip(t["customer"].to_pylist(), t["dt"].to_pylist()):
            k = f"{c}|{d}"
            out["counts"][k] = out["counts"].get(k, 0) + 1
    out["distinct_rows"] = len(pairs)
    out["superseded_present"] = sorted(k for k in superseded if k in data)
    for run in markers:
        manifest = read_json(filesystem_, f"{base}/{complete_prefix}{run}.manifest")
        for entry in manifest["entries"]:
            url = entry["url"]
            assert url.startswith(scheme), url
            key = url[len(scheme):][len(base) + 1:]
            listed.add(key)
            size = data.get(key)
            if size is None and key not in superseded:
                out["marker_problems"].append(f"{run}: {key} is missing")
            elif size is None:
                pass
            elif size is not None and size != entry["meta"]["content_length"]:
                out["marker_problems"].append(f"{run}: {key} has {size} bytes, the marker says {entry['meta']['content_length']}")
        if f"{run}.json" not in completes:
            out["marker_problems"].append(f"{run}: no report")
            continue
        report = read_json(filesystem_, f"{base}/{complete_prefix}{run}.json")
        superseded |= set(report.get("supersedes", []))
        for f in report["files"]:
            partitions.add((f["key"], f"{f['customer']}|{f['dt']}"))
    out["unlisted"] = sorted(k for k in data if k not in listed and k.endswith(".parquet"))
    out["partitions"] = sorted({p for key, p in partitions if key not in superseded})

    local_catalog = f"_citrine/catalog/{table}.json"
    iceberg = f"data/{table}/metadata/version-hint.text" in everything or (
        database and glue_is_iceberg(database, table))
    out["iceberg"] = bool(iceberg)
    if iceberg:
        # An Iceberg table's "partitions" are those of its current snapshot's files.
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import iceberg_state

        t, _ = iceberg_state.load("glue" if database else "local", database or base, table)
        out["catalog"] = sorted({
            f"{task.file.partition[0]}|{iceberg_date(task.file.partition[1])}" for task in t.scan().plan_files()
        })
    elif database:
        out["catalog"] = sorted(glue_partitions(database, table))
    else:
        catalog = read_json(filesystem_, f"{base}/{local_catalog}") if local_catalog in everything else {"partitions": {}}
        out["catalog"] = sorted("|".join(p["values"]) for p in catalog["partitions"].values())

    journals = f"_citrine/runs/{table}/"
    out["journals"] = sorted(k for k in everything if k.startswith(journals))
    out["temporary"] = sorted(
        k for k in everything if os.path.basename(k).startswith(".") and not k.endswith(".lock.cas")
    )
    out["lock"] = f"_citrine/locks/{table}.lock" in everything
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:]), sort_keys=True))
