"""citrine beside DuckDB on the same jobs, same input, same run (called by scripts/bench).

Jobs: CloudFront gzip W3C logs -> typed columns, customer from the folder, IPs masked
(c_ip and every x-forwarded-for element to /24), Hive-partitioned (customer, dt) snappy
Parquet; the audit CSV job (timestamp parsed, source_ip masked); the same audit events as JSON
lines (read_json beside citrine's jsonl decoder, the nested object flattened); and many small
CloudFront files. Each job runs A B A B; every run is timed with /usr/bin/time (wall, peak RSS, CPU).
Two ceilings are measured on the CloudFront files: the machine's own gunzip throughput (2
parallel gzip -dc), and citrine's inflater alone (libdeflate, examples/inflate_ceiling, 2 threads).
With --s3: citrine on s3:// inputs and lake (the local SeaweedFS server) beside local folders.
With --cold: the page cache is dropped before each run instead (root only), so every input is
read from the disk, as a batch run meets a day of logs it never read before.
With --iceberg: the CloudFront and small-files jobs into a Hive table and into an Iceberg table
(table_format = "iceberg"), alternating, and the ratio of their best times.
With --shards: the CloudFront job as one sharded run (plan, N shard processes at once, one
worker each, commit) for N = 1, 2, 4, beside the one-process run.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

root = Path(__file__).resolve().parent.parent
work = root / ".tmp/bench"
release = root / "target/dist/x86_64-unknown-linux-gnu/release"
citrine = release / "citrine"
gen = release / "examples/bench_data"
INFLATE = release / "examples/inflate_ceiling"

FIELDS = ("date time x_edge_location sc_bytes c_ip cs_method cs_host cs_uri_stem sc_status cs_referer "
          "cs_user_agent cs_uri_query cs_cookie x_edge_result_type x_edge_request_id x_host_header "
          "cs_protocol cs_bytes time_taken x_forwarded_for ssl_protocol ssl_cipher "
          "x_edge_response_result_type cs_protocol_version fle_status fle_encrypted_fields c_port "
          "time_to_first_byte x_edge_detailed_result_type sc_content_type sc_content_len "
          "sc_range_start sc_range_end").split()
TYPES = {"date": "DATE", "sc_bytes": "BIGINT", "sc_status": "INTEGER", "cs_bytes": "BIGINT",
         "time_taken": "DOUBLE", "c_port": "INTEGER", "time_to_first_byte": "DOUBLE",
         "sc_content_len": "BIGINT", "sc_range_start": "BIGINT", "sc_range_end": "BIGINT"}

MASK = r"""
CREATE MACRO mask_ip(ip) AS CASE
  WHEN ip IS NULL THEN NULL
  WHEN regexp_full_match(ip, '\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}') THEN regexp_replace(ip, '\.\d+$', '.0') || '/24'
  WHEN ip LIKE '%:%' THEN regexp_extract(ip, '^([0-9a-fA-F]*:[0-9a-fA-F]*:[0-9a-fA-F]*)', 1) || '::/48'
  ELSE '-' END;
"""


def duck_cloudfront(data, out):
    columns = "{" + ", ".join(f"'{f}': '{TYPES.get(f, 'VARCHAR')}'" for f in FIELDS) + "}"
    rest = ", ".join(f for f in FIELDS if f not in ("date", "time", "c_ip", "x_forwarded_for"))
    return MASK + f"""
COPY (
  SELECT date + CAST(time AS TIME) AS ts,
         regexp_extract(filename, '/cloudfront/([^/]+)/', 1) AS customer,
         date AS dt, filename AS source_file,
         mask_ip(c_ip) AS c_ip,
         array_to_string(list_transform(string_split(replace(x_forwarded_for, '%20', ''), ','),
                                        lambda x: mask_ip(trim(x))), ',') AS x_forwarded_for,
         {rest}
  FROM read_csv('{data}/logs/cloudfront/*/*', delim = '\t', header = false, comment = '#',
                nullstr = '-', columns = {columns}, filename = true, auto_detect = false)
) TO '{out}' (FORMAT PARQUET, COMPRESSION SNAPPY, PARTITION_BY (customer, dt));
"""


def duck_audit(data, out):
    return MASK + f"""
COPY (
  SELECT CAST(timestamp AS TIMESTAMPTZ) AS ts,
         regexp_extract(filename, '/audit/([^/]+)/', 1) AS customer,
         CAST(CAST(timestamp AS TIMESTAMPTZ) AS DATE) AS dt, filename AS source_file,
         "user", action, mask_ip(source_ip) AS source_ip, detail
  FROM read_csv('{data}/logs/audit/*/*.csv', header = true, filename = true,
                columns = {{'timestamp': 'VARCHAR', 'user': 'VARCHAR', 'action': 'VARCHAR',
                           'source_ip': 'VARCHAR', 'detail': 'VARCHAR'}}, auto_detect = false)
) TO '{out}' (FORMAT PARQUET, COMPRESSION SNAPPY, PARTITION_BY (customer, dt));
"""


def duck_jsonl(data, out):
    """The JSON lines job: the nested `detail` flattened into columns as citrine does."""
    return MASK + f"""
COPY (
  SELECT CAST(timestamp AS TIMESTAMPTZ) AS ts,
         regexp_extract(filename, '/events/([^/]+)/', 1) AS customer,
         CAST(CAST(timestamp AS TIMESTAMPTZ) AS DATE) AS dt, filename AS source_file,
         "user", action, mask_ip(source_ip) AS source_ip,
         detail.note AS detail_note, CAST(detail.n AS VARCHAR) AS detail_n
  FROM read_json('{data}/logs/events/*/*.jsonl', format = 'newline_delimited', filename = true,
                 columns = {{'timestamp': 'VARCHAR', 'user': 'VARCHAR', 'action': 'VARCHAR',
                            'source_ip': 'VARCHAR', 'detail': 'STRUCT(note VARCHAR, n BIGINT)'}})
) TO '{out}' (FORMAT PARQUET, COMPRESSION SNAPPY, PARTITION_BY (customer, dt));
"""


def citrine_config(data, out, fmt, threads=2, lake=""):
    table = {"cloudfront": "cloudfront_logs", "audit": "wau_audit_logs", "jsonl": "wau_events"}[fmt]
    inputs = {"cloudfront": "logs/cloudfront/{customer}/", "audit": "logs/audit/{customer}/*.csv",
              "jsonl": "logs/events/{customer}/*.jsonl"}[fmt]
    mask = "" if fmt == "cloudfront" else 'mask_ips = ["source_ip"]\n'
    path = out.parent / f"{out.name}.toml"
    path.write_text(f'[lake]\nroot = "{out}"\ncompression = "snappy"\n{lake}[run]\nthreads = {threads}\n'
                    f'[[table]]\nname = "{table}"\nformat = "{fmt}"\ninputs = ["{data}/{inputs}"]\n{mask}')
    return path


def timed(cmd, env=None):
    """Run `cmd` under /usr/bin/time: (seconds, peak RSS MiB, CPU %)."""
    stats = work / "time.txt"
    subprocess.run(["/usr/bin/time", "-o", str(stats), "-f", "%e %M %P"] + cmd, check=True,
                   stdout=subprocess.DEVNULL, env=env)
    e, m, p = stats.read_text().split()[-3:]
    return float(e), int(m) / 1024, float(p.rstrip("%"))


def size_of(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def warm(data):
    """Read every input file once, untimed, so each run starts with its inputs in the page
    cache. Without it the tool that runs after DuckDB (3.7 GiB resident) found part of the
    20,016 small files evicted and waited on the disk (164% CPU against 190%), while DuckDB,
    running after citrine, found them cached."""
    for f in sorted(Path(data, "logs").rglob("*")):
        if f.is_file():
            with open(f, "rb") as h:
                while h.read(1 << 20):
                    pass


def drop_cache(_data):
    """Write dirty pages back and drop the page cache (root only), so the run reads every
    input from the disk (of `_data` and all else: the same signature as `warm`)."""
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("1\n")


def run_job(name, fmt, data, stats, runs, duck_threads, prepare=warm):
    rows, files, raw = stats["rows"], stats["files"], stats["uncompressed"]
    results = {"citrine": [], "duckdb": []}
    for i in range(runs):
        for tool in ("citrine", "duckdb"):
            out = work / f"out-{name}-{tool}"
            shutil.rmtree(out, ignore_errors=True)
            prepare(data)
            if tool == "citrine":
                cmd = [str(citrine), "--config", str(citrine_config(data, out, fmt)), "run"]
            else:
                sql = {"cloudfront": duck_cloudfront, "audit": duck_audit, "jsonl": duck_jsonl}[fmt](data, out)
                script = work / f"{name}.sql"
                script.write_text(f"SET threads = {duck_threads};\nSET preserve_insertion_order = false;\n{sql}")
                cmd = [sys.executable, "-c",
                       "import duckdb, sys; duckdb.connect().execute(open(sys.argv[1]).read())", str(script)]
            secs, rss, cpu = timed(cmd)
            results[tool].append({"seconds": secs, "rss_mib": rss, "cpu_pct": cpu, "bytes_out": size_of(out)})
            print(f"  {name} run {i + 1} {tool}: {secs:.2f} s, {raw / 1e6 / secs:.1f} MB/s, "
                  f"peak RSS {rss:.0f} MiB, CPU {cpu:.0f}%", flush=True)
    best = {t: min(r, key=lambda x: x["seconds"]) for t, r in results.items()}
    line = {"job": name, "rows": rows, "files": files, "uncompressed_mb": raw / 1e6}
    for tool, b in best.items():
        line[tool] = dict(b, rows_per_s=rows / b["seconds"], mb_per_s=raw / 1e6 / b["seconds"],
                          files_per_s=files / b["seconds"])
    line["ratio"] = best["duckdb"]["seconds"] / best["citrine"]["seconds"]
    if fmt == "cloudfront" and name == "cloudfront":
        # Scaling with cores: the same job pinned to one core (taskset), on one worker thread.
        # "One thread" alone would still run a writer thread beside the worker on a second core.
        out = work / f"out-{name}-citrine-1"
        shutil.rmtree(out, ignore_errors=True)
        secs, rss, cpu = timed(["taskset", "-c", "0", str(citrine), "--config",
                                str(citrine_config(data, out, fmt, 1)), "run"])
        line["one_core_seconds"] = secs
        print(f"  {name} citrine on 1 core: {secs:.2f} s, {raw / 1e6 / secs:.1f} MB/s, CPU {cpu:.0f}%; "
              f"2 cores are {secs / best['citrine']['seconds']:.2f}x faster", flush=True)
    return line


def s3_jobs(args):
    """citrine with s3:// inputs and an s3:// lake on the local SeaweedFS server (a real S3 that
    checks signatures), beside the same job on local folders, A B alternating in one run: the
    CloudFront set, and a variant of few large inputs whose Parquet files pass 64 MiB
    (uncompressed), so multipart uploads run with parts in flight."""
    python = sys.executable
    client = [python, str(root / "tests/support/aws_client.py")]
    lines = subprocess.check_output([str(root / "scripts/aws-server"), "start"], text=True).split()
    endpoints = dict(l.split("=", 1) for l in lines)
    cores = os.cpu_count()
    weed_pid = (root / ".tmp/aws-server/weed.pid").read_text().strip()

    def server_cpu():
        """CPU seconds SeaweedFS has used so far (its threads and children)."""
        fields = Path(f"/proc/{weed_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    pin = []
    threads = 2
    if args.pin:
        # The servers on the last core (with their threads), citrine on the others, local and
        # S3 alike: the server's own CPU then does not come out of citrine's share.
        for name in ("weed.pid", "moto.pid"):
            pid = (root / ".tmp/aws-server" / name).read_text().strip()
            subprocess.run(["taskset", "-a", "-p", "-c", str(cores - 1), pid], check=True,
                           stdout=subprocess.DEVNULL)
        pin = ["taskset", "-c", f"0-{cores - 2}" if cores > 2 else "0"]
        threads = cores - 1
    threads = args.threads or threads
    if args.pin:
        print(f"pinned: servers on core {cores - 1}, citrine on {cores - 1} core(s) with {threads} worker(s)", flush=True)
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoints["CITRINE_TEST_S3_ENDPOINT"],
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    try:
        data = work / f"data-cloudfront-{args.mb}"
        if not (data / "stats.json").exists():
            shutil.rmtree(data, ignore_errors=True)
            made = json.loads(subprocess.check_output([str(gen), str(data), "cloudfront", str(args.mb)]))
            made["uncompressed"] = uncompressed(data)
            (data / "stats.json").write_text(json.dumps(made))
        # Few large inputs, each one day of every customer's rows under a customer of its own:
        # one partition per input (and a sliver of the next day), so each Parquet file passes
        # 64 MiB with the default compression and goes up as a multipart upload with parts in
        # flight. (The files are not written uncompressed to get there: SeaweedFS gzips each
        # chunk of an upload whose first bytes compress, which would bench the server's CPU.)
        large = work / f"data-large-days-{args.mb}"
        if not large.exists():
            by_day = {}  # E4.2024-01-01-00.<id>.gz: files by the day in their names, by hour
            for f in sorted(data.rglob("*.gz"), key=lambda f: (f.name.split(".")[1], str(f))):
                by_day.setdefault(f.name.split(".")[1][:10], []).append(f)
            for customer, day in zip(("acme", "globex", "initech"), sorted(by_day)):
                folder = large / "logs/cloudfront" / customer
                folder.mkdir(parents=True)
                with open(folder / f"E1.{day}-00.large.gz", "wb") as out:
                    for f in by_day[day]:
                        out.write(f.read_bytes())
        bucket = f"bench-{os.getpid()}"
        subprocess.run(client + ["mkbucket", bucket], check=True, env=env, stdout=subprocess.DEVNULL)
        print(f"S3 (SeaweedFS at {endpoints['CITRINE_TEST_S3_ENDPOINT']}): uploading the inputs", flush=True)
        for name, d in (("cloudfront", data), ("large", large)):
            subprocess.run(client + ["upload", bucket, name, str(d / "logs")], check=True, env=env,
                           stdout=subprocess.DEVNULL)
        table = []
        for name, d in (("cloudfront", data), ("large", large)):
            raw = json.loads((data / "stats.json").read_text())["uncompressed"]
            results = {"local": [], "s3": []}
            for i in range(args.runs):
                for where in ("local", "s3"):
                    out = work / f"out-s3-{name}-{where}"
                    shutil.rmtree(out, ignore_errors=True)
                    if where == "local":
                        lake, inputs = str(out), f"{d}/logs/cloudfront/{{customer}}/"
                        aws = ""
                    else:
                        lake, inputs = f"s3://{bucket}/lake-{name}-{i}", f"s3://{bucket}/{name}/cloudfront/{{customer}}/"
                        # Request bodies unsigned, as on AWS (HTTPS) by default; over the
                        # local server's http:// they would be signed (a SHA-256 pass).
                        aws = "[aws]\ns3_sign_payload = false\n"
                    cfg = work / f"s3-{name}-{where}.toml"
                    cfg.write_text(f'[lake]\nroot = "{lake}"\n{aws}[run]\nthreads = {threads}\n'
                                   f'[[table]]\nname = "cloudfront_logs"\nformat = "cloudfront"\ninputs = ["{inputs}"]\n')
                    stats = work / "time.txt"
                    cpu_before = server_cpu()
                    subprocess.run(pin + ["/usr/bin/time", "-o", str(stats), "-f", "%e %M %P", str(citrine),
                                    "--config", str(cfg), "run"], check=True, env=env, stdout=subprocess.DEVNULL)
                    e, m, p = stats.read_text().split()[-3:]
                    results[where].append((float(e), int(m) / 1024, p))
                    server = server_cpu() - cpu_before
                    print(f"  {name} run {i + 1} {where}: {float(e):.2f} s, peak RSS {int(m) / 1024:.0f} MiB, CPU {p}"
                          f"; SeaweedFS used {server:.2f} CPU s ({100 * server / float(e):.0f}% of a core)", flush=True)
            best = {w: min(r) for w, r in results.items()}
            table.append((name, raw, best))
        print("\n| job | local lake | s3:// lake and inputs | S3 as % of local | peak RSS local / S3 |")
        print("|---|---|---|---|---|")
        for name, raw, best in table:
            print(f"| {name} | {best['local'][0]:.2f} s | {best['s3'][0]:.2f} s | "
                  f"{100 * best['local'][0] / best['s3'][0]:.0f}% | {best['local'][1]:.0f} / {best['s3'][1]:.0f} MiB |")
    finally:
        subprocess.run([str(root / "scripts/aws-server"), "stop"], check=False)


def job_data(name, kind, mb):
    """The seeded input of a job (generated once, kept under .tmp/bench) and its stats."""
    data = work / f"data-{name}-{mb}"
    if not (data / "stats.json").exists():
        shutil.rmtree(data, ignore_errors=True)
        size_mb = mb if kind != "small" else 20000 * 50 // 1024
        made = json.loads(subprocess.check_output([str(gen), str(data), kind, str(size_mb)]))
        made["uncompressed"] = uncompressed(data)
        (data / "stats.json").write_text(json.dumps(made))
    return data, json.loads((data / "stats.json").read_text())


def cloudfront_data(mb):
    return job_data("cloudfront", "cloudfront", mb)


def sharded(cfg, shards):
    """plan -> `shards` shard processes at once -> commit; wall seconds of the whole."""
    table = ["--table", "cloudfront_logs"]
    start = time.monotonic()
    subprocess.run([str(citrine), "-c", str(cfg), "plan", *table, "--shards", str(shards)],
                   check=True, stdout=subprocess.DEVNULL)
    children = [subprocess.Popen([str(citrine), "-c", str(cfg), "run", *table, "--planned",
                                  "--shard", str(i)], stdout=subprocess.DEVNULL)
                for i in range(shards)]
    for c in children:
        assert c.wait() == 0, "a shard failed"
    subprocess.run([str(citrine), "-c", str(cfg), "commit", *table], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def shard_jobs(args):
    """One sharded run of the CloudFront job with 1, 2 and 4 shard processes (one worker each,
    as a 1-vCPU Batch job), beside the one-process run with a worker per core, alternating."""
    data, stats = cloudfront_data(args.mb)
    raw = stats["uncompressed"] / 1e6
    print(f"machine: {os.cpu_count()} cores; cloudfront: {stats['files']} files, {raw:.0f} MB uncompressed", flush=True)
    modes = [("one process, 2 workers", 0)] + [(f"{n} shard{'s' * (n > 1)}, 1 worker each", n) for n in (1, 2, 4)]
    best = {}
    for i in range(args.runs):
        for name, shards in modes:
            out = work / "out-shards"
            shutil.rmtree(out, ignore_errors=True)
            cfg = citrine_config(data, out, "cloudfront", threads=2 if shards == 0 else 1)
            if shards == 0:
                secs, _, _ = timed([str(citrine), "--config", str(cfg), "run"])
            else:
                secs = sharded(cfg, shards)
            best[name] = min(best.get(name, secs), secs)
            print(f"  run {i + 1} {name}: {secs:.2f} s", flush=True)
    one = best[modes[1][0]]
    print("\n| mode | wall | MB/s (uncompressed) | vs 1 shard |")
    print("|---|---|---|---|")
    for name, _ in modes:
        print(f"| {name} | {best[name]:.2f} s | {raw / best[name]:.0f} | {one / best[name]:.2f}x |")


def iceberg_jobs(args):
    """The same run into a Hive table and into an Iceberg table, A B A B: what one Iceberg
    commit (a manifest, a manifest list, a metadata file, the catalog's pointer) costs a run."""
    jobs = [("cloudfront", *cloudfront_data(args.mb))]
    if args.small_files:
        jobs.append(("small_files", *job_data("small_files", "small", 0)))
    print(f"machine: {os.cpu_count()} cores; citrine "
          f"{subprocess.check_output([str(citrine), '--version'], text=True).strip()}", flush=True)
    rows = []
    for name, data, stats in jobs:
        raw = stats["uncompressed"] / 1e6
        print(f"{name}: {stats['files']} files, {raw:.0f} MB uncompressed", flush=True)
        best = {}
        for i in range(args.runs):
            for mode, lake in (("hive", ""), ("iceberg", 'table_format = "iceberg"\n')):
                out = work / f"out-{name}-{mode}"
                shutil.rmtree(out, ignore_errors=True)
                warm(data)
                cfg = citrine_config(data, out, "cloudfront", lake=lake)
                secs, rss, _ = timed([str(citrine), "--config", str(cfg), "run"])
                best[mode] = min(best.get(mode, secs), secs)
                print(f"  run {i + 1} {mode}: {secs:.2f} s, peak RSS {rss:.0f} MiB", flush=True)
        rows.append((name, stats["files"], raw, best))
    print("\n| job | input | Hive | Iceberg | Iceberg / Hive |")
    print("|---|---|---|---|---|")
    for name, files, raw, best in rows:
        print(f"| {name} | {files} files, {raw:.0f} MB | {best['hive']:.2f} s | {best['iceberg']:.2f} s | "
              f"{best['iceberg'] / best['hive']:.3f} |")


def uncompressed(data):
    total = 0
    for f in Path(data).rglob("*"):
        if f.is_file():
            if f.suffix == ".gz":
                total += int(subprocess.check_output(["sh", "-c", f"gzip -dc '{f}' | wc -c"]))
            else:
                total += f.stat().st_size
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1024, help="uncompressed CloudFront MB")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--small-files", type=int, default=20000, help="0 skips the small-files job")
    ap.add_argument("--threads", type=int, default=0, help="with --s3: citrine's workers")
    ap.add_argument("--pin", action="store_true",
                    help="with --s3: the servers on the last core, citrine on the others")
    ap.add_argument("--cold", action="store_true",
                    help="drop the page cache before each run (root only): inputs read from the disk")
    ap.add_argument("--shards", action="store_true",
                    help="instead: the CloudFront job as a sharded run with 1, 2, 4 shard processes")
    ap.add_argument("--iceberg", action="store_true",
                    help="instead: the CloudFront and small-files jobs into Hive and Iceberg tables")
    ap.add_argument("--s3", action="store_true",
                    help="instead: the CloudFront job on s3:// (local SeaweedFS) beside local folders")
    args = ap.parse_args()
    work.mkdir(parents=True, exist_ok=True)
    if args.s3:
        return s3_jobs(args)
    if args.shards:
        return shard_jobs(args)
    if args.iceberg:
        return iceberg_jobs(args)
    import duckdb
    if args.cold and os.geteuid() != 0:
        sys.exit("--cold drops the page cache: run it as root")
    print(f"machine: {os.cpu_count()} cores, {os.uname().machine}; duckdb {duckdb.__version__}; "
          f"citrine {subprocess.check_output([str(citrine), '--version'], text=True).strip()}", flush=True)
    table = []
    jobs = [("cloudfront", "cloudfront", args.mb), ("audit", "audit", max(args.mb // 4, 16)),
            ("jsonl", "jsonl", max(args.mb // 4, 16))]
    if args.small_files:
        jobs.append(("small_files", "small", 0))
    for name, kind, mb in jobs:
        data, stats = job_data(name, kind, mb)
        fmt = kind if kind in ("audit", "jsonl") else "cloudfront"
        print(f"{name}: {stats['files']} files, {stats['rows']} rows, "
              f"{stats['uncompressed'] / 1e6:.0f} MB uncompressed, {stats['bytes_on_disk'] / 1e6:.0f} MB on disk", flush=True)
        if kind == "cloudfront":
            start = time.monotonic()
            subprocess.run(["sh", "-c", f"find '{data}' -name '*.gz' -print0 | xargs -0 -P2 -n64 gzip -dc > /dev/null"], check=True)
            gunzip = stats["uncompressed"] / 1e6 / (time.monotonic() - start)
            print(f"  gunzip alone (2 processes): {gunzip:.1f} MB/s", flush=True)
            ceiling = json.loads(subprocess.check_output([str(INFLATE), str(data), "2"]))
            libdeflate = ceiling["bytes_out"] / 1e6 / ceiling["seconds"]
            print(f"  libdeflate alone (citrine's inflater, 2 threads): {libdeflate:.1f} MB/s", flush=True)
        line = run_job(name, fmt, data, stats, args.runs, 2, drop_cache if args.cold else warm)
        if kind == "cloudfront":
            line["gunzip_mb_per_s"] = gunzip
            line["libdeflate_mb_per_s"] = libdeflate
        table.append(line)
    if args.cold:
        print("\ninputs cold: the page cache was dropped before each run")
    print("\n| job | input | citrine MB/s | DuckDB MB/s | citrine / DuckDB | citrine rows/s | citrine peak RSS | DuckDB peak RSS | citrine CPU | output citrine / DuckDB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for l in table:
        c, d = l["citrine"], l["duckdb"]
        extra = f" ({c['files_per_s']:.0f} files/s)" if l["job"] == "small_files" else ""
        print(f"| {l['job']} | {l['files']} files, {l['uncompressed_mb']:.0f} MB | {c['mb_per_s']:.1f}{extra} | {d['mb_per_s']:.1f} | "
              f"{l['ratio']:.2f}x | {c['rows_per_s']:.0f} | {c['rss_mib']:.0f} MiB | {d['rss_mib']:.0f} MiB | {c['cpu_pct']:.0f}% | "
              f"{c['bytes_out'] / 1e6:.0f} MB / {d['bytes_out'] / 1e6:.0f} MB |")
    for l in table:
        if "gunzip_mb_per_s" in l:
            print(f"\ncloudfront: citrine at {100 * l['citrine']['mb_per_s'] / l['gunzip_mb_per_s']:.0f}% of gunzip alone "
                  f"({l['gunzip_mb_per_s']:.1f} MB/s), {100 * l['citrine']['mb_per_s'] / l['libdeflate_mb_per_s']:.0f}% of "
                  f"libdeflate alone ({l['libdeflate_mb_per_s']:.1f} MB/s)")
    (work / "results.json").write_text(json.dumps(table, indent=2))


main()
