"""The fleet benchmark's results as a section of docs/benchmarks.md (`bench/fleet_bench.py`)."""

from __future__ import annotations

import statistics

from bench.fleet_store import LIST_MODELS_VERSIONS, OP_S, SIZE_JOBS, SIZE_RETAILERS, SIZE_SERVED

SIDES = ("sqlite", "pg1", "pg2", "pg3")
SWITCHES, POLL_MS = 20, 5


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def markdown(r: dict) -> str:
    """The results as a section of docs/benchmarks.md."""
    p, names = r["predict"], {"sqlite": "1 gateway, SQLite", "pg1": "1 replica, PostgreSQL",
                              "pg2": "2 replicas, PostgreSQL", "pg3": "3 replicas, PostgreSQL"}
    base_u, base_b = p["sqlite"]["unary"]["rows_per_s"], p["sqlite"]["bulk"]["rows_per_s"]
    cpu = lambda x: (f"{x['cpu_gateways']:.2f} / {x['cpu_postgres']:.2f} / "
                     f"{x['cpu_clients']:.2f} / {x['cpu_machine']:.2f}")
    lines = [
        (f"One model ({r['series']} series: 20 stores x 33 families of synthetic history, 30 "
         "rounds) imported as v1 (live) and v2 into one gateway on the embedded SQLite database "
         "and into one data dir that three replicas share on one PostgreSQL 15 database (a "
         "throwaway server with fsync and synchronous_commit off, as in the tests; SQLite runs "
         "WAL with synchronous=NORMAL, no fsync per commit either). Every gateway has its "
         f"defaults. Load: {r['client_procs']} client processes x {r['client_threads']} "
         f"threads on the same {r['cpus']} cores, each thread its own `ForecastClient` calling "
         f"flat out for {r['window_s']:g} s a window; replicas through one `ipv4:A,B,C` name, "
         f"round robin (unused replicas up and idle); sides interleaved, {r['repeats']} rounds; "
         "rows/s the median of the rounds, latencies pooled. Unary: one series x 16 days "
         f"(series cycled); bulk: `predict_frame` of every series x 16 days ({r['bulk_rows']:,} "
         "rows, one PredictStream); before the windows each gateway forecast every cell once, so "
         "its served-forecast recorder had written them (the steady state). CPU: CPU seconds a "
         "second of the gateways / PostgreSQL / the client processes / the whole machine "
         f"(/proc/stat; {r['cpus']:.1f} is all of it)."), "",
        ("| side | unary rows/s | unary calls/s | unary p50 ms | unary p99 ms | bulk rows/s | "
         "unary / SQLite | bulk / SQLite | CPU unary | CPU bulk |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for side in SIDES:
        u, b = p[side]["unary"], p[side]["bulk"]
        lines.append(f"| {names[side]} | {u['rows_per_s']:,} | {u['calls_per_s']:.1f} | "
                     f"{u['p50_ms']:.1f} | {u['p99_ms']:.1f} | {b['rows_per_s']:,} | "
                     f"{_ratio(u['rows_per_s'], base_u)} | {_ratio(b['rows_per_s'], base_b)} | "
                     f"{cpu(u)} | {cpu(b)} |")
    errors = sum(p[s][k]["errors"] for s in SIDES for k in ("unary", "bulk"))
    per_call = {s: p[s]["unary"]["cpu_gateways"] / p[s]["unary"]["calls_per_s"] * 1e3
                for s in SIDES if p[s]["unary"]["calls_per_s"]}
    lines += ["", (f"Failed calls: {errors}. Gateway CPU per unary call: "
                   + ", ".join(f"{names[s]} {v:.1f} ms" for s, v in per_call.items())
                   + f". Connections of the replicas to PostgreSQL, at most: "
                     f"{r['connections_max']} (3 replicas, load and ListModels windows); "
                     f"idle, a replica commits {r['idle_commits_per_s_per_replica']:.1f} "
                     "transactions a second (its dispatcher's polls)."), ""]
    reg, u = r["registry"], r["train_records_updates"]
    ops = (("list_models", f"ListModels ({LIST_MODELS_VERSIONS} versions)"),
           ("train_records", (f"a Train's records ({u + 4} transactions: add_job, claim_job, "
                              f"{u} update_job, next_model_number + add_model under the publish "
                              "lock)")),
           ("set_live", "a live switch (set_live)"))
    lines += [("Registry operations a second through the `Registry` class, a fresh SQLite file "
               f"beside a fresh PostgreSQL database ({OP_S:g} s each; threads of one process). "
               "ms/op split: CPU of the calling process / of PostgreSQL, one thread."), "",
              ("| operation | SQLite, 1 thread | SQLite, 4 threads | PostgreSQL, 1 thread | "
               "PostgreSQL, 4 threads | PostgreSQL / SQLite, 1 thread | ms/op SQLite | "
               "ms/op PostgreSQL (caller CPU / server CPU) |"),
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for op, label in ops:
        sq, pq = reg["sqlite"][op], reg["postgresql"][op]
        lines.append(f"| {label} | {sq['1']['per_s']:,} | {sq['4']['per_s']:,} | "
                     f"{pq['1']['per_s']:,} | {pq['4']['per_s']:,} | "
                     f"{_ratio(pq['1']['per_s'], sq['1']['per_s'])} | "
                     f"{1e3 / sq['1']['per_s']:.2f} | {1e3 / pq['1']['per_s']:.2f} "
                     f"({pq['1']['caller_cpu_ms']:.2f} / {pq['1']['postgres_cpu_ms']:.2f}) |")
    g = r["grpc_list_models"]
    lines += ["", ("Through gRPC: ListModels from the same client threads, "
                   + ", ".join(f"{names[s]} {g[s]['calls_per_s']:.0f} calls/s (p99 "
                               f"{g[s]['p99_ms']:.1f} ms, gateway CPU {g[s]['cpu_gateways']:.2f})"
                               for s in g)
                   + f"; SetLiveModel from one thread, SQLite gateway "
                     f"{r['grpc_set_live_per_s']['sqlite']:.1f}/s, replica A on PostgreSQL "
                     f"{r['grpc_set_live_per_s']['postgresql']:.1f}/s."), ""]
    w = r["switch"]
    reach = sorted(x for pair in w["reach_ms"] for x in pair)
    lines += [(f"A live switch's reach: {w['switches']} SetLiveModel calls on replica A (each "
               f"{w['set_live_p50_ms']:.0f} ms at the median), a random part of a poll apart; "
               f"Predict on B and C every {POLL_MS} ms until each answered with the new version "
               f"(`--fleet-poll-s` {w['poll_s']:g}): median {statistics.median(reach):.0f} ms, "
               f"max {max(reach):.0f} ms over both (B {w['b_median_ms']:.0f} / "
               f"{w['b_max_ms']:.0f} ms, C {w['c_median_ms']:.0f} / {w['c_max_ms']:.0f} ms). "
               f"The first switch to v2, which B and C had to load, reached them in "
               f"{w['first_reach_ms'][0]:.0f} and {w['first_reach_ms'][1]:.0f} ms "
               "(under no client load)."), ""]
    z, t = r["sizes"], r["train"]
    lines += [(f"What the database holds. One real Train through the fleet's name (the bundled "
               f"sample, tests' FAST_HP) ran on {t['owner']} in {t['seconds']:.1f} s and updated "
               f"its job row {t['seq']} times (seq). Its job, dataset, model and key rows were "
               f"copied over {SIZE_RETAILERS:,} retailers ({SIZE_JOBS:,} jobs), beside "
               f"{SIZE_SERVED:,} served-forecast rows and live scores, into a fresh database of "
               "each engine. Bytes a row: PostgreSQL's table + indexes + TOAST, SQLite's "
               "b-tree pages (dbstat)."), "",
              "| table | rows | PostgreSQL bytes/row | SQLite bytes/row |",
              "| --- | ---: | ---: | ---: |"]
    for name, v in z.items():
        if isinstance(v, dict):
            lines.append(f"| {name} | {v['rows']:,} | {v['pg_bytes_per_row']:,.0f} | "
                         f"{v.get('sqlite_bytes_per_row', float('nan')):,.0f} |")
    lines += ["", (f"Whole databases: PostgreSQL {z['pg_database_bytes'] / 1e6:.1f} MB (with "
                   f"its ~7.5 MB catalog), SQLite {z['sqlite_file_bytes'] / 1e6:.1f} MB; the "
                   f"fleet's own database after the run {r['fleet_db']['bytes'] / 1e6:.1f} MB "
                   f"({r['fleet_db']['served_rows']:,} served rows). One artifact of this model "
                   f"on the shared data dir: {r['artifact_bytes'] / 1e6:.2f} MB.")]
    return "\n".join(lines)
