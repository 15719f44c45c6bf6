"""Options shared by ``damo-collect`` subcommands (damo's option names) and their parsing."""
from __future__ import annotations

import argparse
import os

from damo_pipe.errors import UsageError

U64_MAX = (1 << 64) - 1


def add_sysfs_options(parser):
    g = parser.add_argument_group("DAMON sysfs")
    g.add_argument("--sysfs_root", metavar="DIR", default=None,
                   help="DAMON sysfs admin directory to drive (default: /sys/kernel/mm/damon/admin; "
                        "a DIR whose kernel/mm/damon/admin exists works too). Tests point it "
                        "at a fake tree.")
    g.add_argument("--state_file", metavar="FILE", default=None,
                   help="ownership file listing the kdamonds damo-collect created "
                        "(default: $DAMO_PIPE_STATE_FILE or /run/damo-pipe/owned.json)")
    g.add_argument("--proc_root", metavar="DIR", default="/proc", help=argparse.SUPPRESS)
    return g


def add_monitoring_options(parser):
    g = parser.add_argument_group("monitoring")
    g.add_argument("--ops", choices=("vaddr", "fvaddr", "paddr"), default=None,
                   help="DAMON operations set (default: vaddr with a target process, else paddr)")
    g.add_argument("--target_pid", type=int, action="append", default=[], metavar="PID",
                   help="process to monitor (repeatable)")
    g.add_argument("--regions", metavar="RANGES", default=None,
                   help="monitoring regions 'START-END[,START-END...]' (paddr default: the "
                        "biggest System RAM range of /proc/iomem; required for fvaddr)")
    g.add_argument("--monitoring_intervals", nargs=3, metavar=("SAMPLE", "AGGR", "UPDATE"),
                   default=None, help="sampling, aggregation and ops update intervals "
                                      "(µs or with units, e.g. 5ms 100ms 1s; default 5ms 100ms 1s)")
    g.add_argument("--monitoring_intervals_autotune", action="store_true",
                   help="let DAMON auto-tune the intervals (kernel 6.15+; goal: 4%% access "
                        "samples per 3 aggregations, sample 5ms-10s)")
    g.add_argument("--monitoring_nr_regions_range", nargs=2, metavar=("MIN", "MAX"), type=int,
                   default=None, help="minimum and maximum number of regions (default 10 1000)")
    s = parser.add_argument_group("DAMOS schemes (repeat --damos_action for more schemes)")
    s.add_argument("--damos_action", nargs="+", action="append", default=[], metavar="ACTION",
                   help="action of a scheme (pageout, cold, willneed, hugepage, nohugepage, "
                        "lru_prio, lru_deprio, migrate_hot NID, migrate_cold NID, stat)")
    s.add_argument("--damos_sz_region", nargs=2, action="append", default=[], metavar=("MIN", "MAX"),
                   help="region size range of the scheme (e.g. 4K max)")
    s.add_argument("--damos_access_rate", nargs=2, action="append", default=[], metavar=("MIN", "MAX"),
                   help="access rate range in percent (e.g. 0 0)")
    s.add_argument("--damos_age", nargs=2, action="append", default=[], metavar=("MIN", "MAX"),
                   help="age range (time, e.g. 60s max)")
    s.add_argument("--damos_apply_interval", action="append", default=[], metavar="INTERVAL",
                   help="apply interval of the scheme (time; 0 = aggregation interval)")
    s.add_argument("--damos_quotas", nargs="+", action="append", default=[],
                   metavar="VALUE", help="TIME_MS SIZE RESET_MS [SZ_WEIGHT ACCESS_WEIGHT AGE_WEIGHT]")
    s.add_argument("--damos_quota_interval", action="append", default=[], metavar="TIME",
                   help="quota reset interval")
    s.add_argument("--damos_quota_time", action="append", default=[], metavar="TIME",
                   help="time quota per reset interval")
    s.add_argument("--damos_quota_space", action="append", default=[], metavar="SIZE",
                   help="size quota per reset interval")
    s.add_argument("--damos_quota_weights", nargs=3, action="append", default=[],
                   metavar=("SZ", "ACCESS", "AGE"), help="prioritization weights (permil)")
    s.add_argument("--damos_wmarks", nargs=5, action="append", default=[],
                   metavar=("METRIC", "INTERVAL", "HIGH", "MID", "LOW"),
                   help="watermarks: none|free_mem_rate, check interval, high/mid/low (permil)")
    s.add_argument("--damos_filter", nargs="+", action="append", default=[], metavar="ARG",
                   help="TYPE matching|nomatching [ARGS]: anon, young, memcg PATH, "
                        "addr START END, target IDX (applies to the last --damos_action)")
    return g


def add_profile_options(parser, do_record=True):
    """--do_record (damo's words) and --perf_path."""
    from damo_pipe.collect.profile import DO_RECORD_CHOICES, DO_RECORD_DEFAULT
    g = parser.add_argument_group("what to record beside the access pattern")
    if do_record:
        g.add_argument("--do_record", nargs="+", choices=DO_RECORD_CHOICES, default=None,
                       metavar="WHAT",
                       help="what to record (damo's words): access (always), cpu_profile "
                            "(perf record, system-wide, stored in the archive; left out with "
                            "a warning when perf is missing), mem_footprint (/proc/PID/statm "
                            "and /proc/meminfo); default: %s (no cpu_profile with "
                            "--sysfs_root, a test tree). vmas and proc_stats are accepted "
                            "and ignored" % " ".join(DO_RECORD_DEFAULT))
    g.add_argument("--perf_path", metavar="PATH", default=None,
                   help="perf executable for the CPU profile and --tracer perf (default: "
                        "perf in PATH)")
    g.add_argument("--cpu_profile_freq", type=int, metavar="HZ", default=None,
                   help="CPU profile sampling frequency (perf record -F; default: perf's, "
                        "4000 Hz)")
    return g


def perf_path(args):
    """The perf to run: --perf_path, else the tracer's --perf when given, else None."""
    given = getattr(args, "perf_path", None)
    if given is None and getattr(args, "perf", "perf") != "perf":
        given = args.perf
    return given


def do_record_words(args):
    """The --do_record words asked for (checked), or damo's default (without cpu_profile
    when --sysfs_root drives a test tree: no profile of the real machine then)."""
    from damo_pipe.collect.profile import DO_RECORD_DEFAULT, check_do_record
    words = getattr(args, "do_record", None)
    if words is None:
        words = list(DO_RECORD_DEFAULT)
        if getattr(args, "sysfs_root", None) is not None:
            words.remove("cpu_profile")
    check_do_record(words)
    return words


def deduce_target(args, shell_single=False):
    """RecordTarget of the TARGET arguments (a pid, `paddr`, `ongoing` or a command).
    ``shell_single``: one argument with a space is a shell command line (damo's monitor
    runs its target with bash)."""
    from damo_pipe.collect.recording import RecordTarget

    t = list(args.target)
    pids = list(args.target_pid)
    if len(t) == 1 and t[0] == "ongoing":
        return RecordTarget(ongoing=True, ops=args.ops)
    if len(t) == 1 and t[0] == "paddr":
        if args.ops not in (None, "paddr"):
            raise UsageError("target paddr conflicts with --ops %s" % args.ops)
        args.ops = "paddr"
    elif len(t) == 1 and t[0].isdigit():
        pids.append(int(t[0]))
    elif len(t) == 1 and shell_single and len(t[0].split()) > 1:
        import shutil
        return RecordTarget(pids=pids, command=[shutil.which("bash") or "/bin/sh", "-c", t[0]],
                            ops=args.ops)
    elif t:
        return RecordTarget(pids=pids, command=t, ops=args.ops)
    return RecordTarget(pids=pids, ops=args.ops)


def add_record_timing_options(parser):
    g = parser.add_argument_group("recording")
    g.add_argument("--snapshot_interval", metavar="TIME", default=None,
                   help="time between snapshots (default: every aggregation interval)")
    g.add_argument("--flush_interval", type=float, default=1.0, metavar="SECONDS",
                   help="make appended snapshots durable at least this often (default 1)")
    g.add_argument("--output_flush_sec", type=float, default=None, metavar="SECONDS",
                   help="rotate: every SECONDS close the archive and continue in FILE.1.h5, "
                        "FILE.2.h5, ...")
    g.add_argument("--stats_interval", type=float, default=1.0, metavar="SECONDS",
                   help="refresh DAMOS stats (update_schemes_stats) at most this often (default 1)")
    g.add_argument("--footprint_interval", type=float, default=1.0, metavar="SECONDS",
                   help="record /proc/PID/statm and /proc/meminfo this often (default 1)")
    g.add_argument("--compression", choices=("gzip", "lz4", "zstd", "none"), default=None,
                   help="archive compression (default: the archive's default)")
    g.add_argument("--engine", choices=("auto", "cython", "python"), default="auto",
                   help=argparse.SUPPRESS)
    return g


def _num_us(text, what):
    from damo_pipe.formats.numbers import text_to_us
    try:
        v = text_to_us(text)
    except ValueError:
        raise UsageError("cannot parse %s %r as a time" % (what, text)) from None
    return int(v)


def _bytes(text, what):
    from damo_pipe.formats.numbers import text_to_bytes
    try:
        return int(text_to_bytes(text))
    except ValueError:
        raise UsageError("cannot parse %s %r as a size" % (what, text)) from None


def _pct(text, what):
    from damo_pipe.formats.numbers import text_to_percent
    if text == "max":
        return 100.0
    if text == "min":
        return 0.0
    try:
        return float(text_to_percent(text))
    except ValueError:
        raise UsageError("cannot parse %s %r as a percentage" % (what, text)) from None


def parse_regions(text):
    """'START-END[,START-END]' (numbers with units or hex) -> [(start, end)]."""
    if not text:
        return []
    out = []
    for part in text.replace(",", " ").split():
        a, sep, b = part.partition("-")
        if not sep:
            raise UsageError("region %r is not START-END" % part)
        try:
            out.append((int(a, 0), int(b, 0)))
        except ValueError:
            out.append((_bytes(a, "region start"), _bytes(b, "region end")))
    return out


def parse_filter(tokens):
    if len(tokens) < 2:
        raise UsageError("--damos_filter needs TYPE and matching|nomatching")
    ftype, matching = tokens[0], tokens[1]
    if matching not in ("matching", "nomatching"):
        raise UsageError("--damos_filter: second value must be matching or nomatching")
    f = {"type": ftype, "matching": matching == "matching"}
    rest = tokens[2:]
    need = {"memcg": 1, "addr": 2, "target": 1}.get(ftype, 0)
    if len(rest) != need:
        raise UsageError("--damos_filter %s takes %d argument(s)" % (ftype, need))
    if ftype == "memcg":
        f["memcg_path"] = rest[0]
    elif ftype == "addr":
        f["addr_start"], f["addr_end"] = _bytes(rest[0], "address"), _bytes(rest[1], "address")
    elif ftype == "target":
        f["target_idx"] = int(rest[0])
    elif ftype not in ("anon", "young", "unmapped", "active"):
        raise UsageError("unknown --damos_filter type %r" % ftype)
    return f


def build_schemes(args):
    from damo_pipe.collect.kdamond import SchemeSpec, WMARK_METRICS

    schemes = []
    for i, action in enumerate(args.damos_action):
        s = SchemeSpec(action=action[0])
        if action[0] in ("migrate_hot", "migrate_cold"):
            if len(action) != 2:
                raise UsageError("%s needs a target NUMA node id" % action[0])
            s.target_nid = int(action[1])
        elif len(action) != 1:
            raise UsageError("action %s takes no argument" % action[0])

        def nth(lst):
            return lst[i] if i < len(lst) else None

        v = nth(args.damos_sz_region)
        if v:
            s.sz_min, s.sz_max = _bytes(v[0], "region size"), _bytes(v[1], "region size")
        v = nth(args.damos_access_rate)
        if v:
            s.access_rate_min, s.access_rate_max = _pct(v[0], "access rate"), _pct(v[1], "access rate")
        v = nth(args.damos_age)
        if v:
            s.age_min_us = 0 if v[0] == "min" else (U64_MAX if v[0] == "max" else _num_us(v[0], "age"))
            s.age_max_us = U64_MAX if v[1] == "max" else (0 if v[1] == "min" else _num_us(v[1], "age"))
        v = nth(args.damos_apply_interval)
        if v:
            s.apply_interval_us = _num_us(v, "apply interval")
        v = nth(args.damos_quotas)
        if v:
            if len(v) not in (3, 6):
                raise UsageError("--damos_quotas takes 3 or 6 values")
            s.quota_ms = _num_us(v[0], "quota time") if not v[0].isdigit() else int(v[0])
            s.quota_bytes = _bytes(v[1], "quota size")
            s.quota_reset_ms = int(v[2]) if v[2].isdigit() else _num_us(v[2], "quota interval") // 1000
            if len(v) == 6:
                s.quota_weights = tuple(int(x) for x in v[3:])
        v = nth(args.damos_quota_interval)
        if v:
            s.quota_reset_ms = _num_us(v, "quota interval") // 1000
        v = nth(args.damos_quota_time)
        if v:
            s.quota_ms = _num_us(v, "quota time") // 1000
        v = nth(args.damos_quota_space)
        if v:
            s.quota_bytes = _bytes(v, "quota space")
        v = nth(args.damos_quota_weights)
        if v:
            s.quota_weights = tuple(int(x) for x in v)
        v = nth(args.damos_wmarks)
        if v:
            if v[0] not in WMARK_METRICS:
                raise UsageError("watermark metric must be one of %s" % ", ".join(WMARK_METRICS))
            s.wmark_metric = v[0]
            s.wmark_interval_us = _num_us(v[1], "watermark interval")
            s.wmark_high, s.wmark_mid, s.wmark_low = (int(x) for x in v[2:])
        schemes.append(s)
    if args.damos_filter:
        if not schemes:
            raise UsageError("--damos_filter needs a --damos_action")
        schemes[-1].filters = [parse_filter(t) for t in args.damos_filter]
    for name in ("damos_sz_region", "damos_access_rate", "damos_age", "damos_quotas", "damos_wmarks"):
        if len(getattr(args, name)) > max(1, len(schemes)) or (getattr(args, name) and not schemes):
            raise UsageError("--%s given more often than --damos_action" % name)
    return schemes


def build_spec(args, pids, default_ops="vaddr", iomem_path="/proc/iomem"):
    from damo_pipe.collect.kdamond import MonitoringSpec, default_paddr_region

    ops = args.ops or (default_ops if pids else "paddr")
    proc_root = getattr(args, "proc_root", "/proc") or "/proc"
    for pid in pids:
        if not os.path.exists(os.path.join(proc_root, str(pid))):
            raise UsageError("no process with pid %d" % pid)
    spec = MonitoringSpec(ops=ops, pids=list(pids) if ops != "paddr" else [])
    if ops == "paddr" and pids:
        raise UsageError("paddr monitors physical memory: no target process")
    regions = parse_regions(args.regions)
    if ops == "paddr":
        spec.regions = [regions or [default_paddr_region(iomem_path)]]
    elif regions:
        spec.regions = [list(regions) for _ in spec.pids]
    if args.monitoring_intervals:
        spec.sample_us, spec.aggr_us, spec.update_us = (
            _num_us(v, "interval") for v in args.monitoring_intervals)
    if args.monitoring_nr_regions_range:
        spec.min_nr_regions, spec.max_nr_regions = args.monitoring_nr_regions_range
    if args.monitoring_intervals_autotune:
        spec.autotune = (400, 3, 5000, 10000000)
    spec.schemes = build_schemes(args)
    return spec


def open_tree_and_ownership(args):
    from damo_pipe.collect.ownership import OwnershipFile
    from damo_pipe.collect.sysfs import SysfsTree

    return SysfsTree(args.sysfs_root), OwnershipFile(args.state_file)

