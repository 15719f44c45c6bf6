"""``damo-collect status``: show what DAMON runs (read only)."""
import json
import os
import time

from damo_pipe.collect.commands import _options

HELP = "show the kdamonds that run, which of them damo-collect started (read only)"

DESCRIPTION = """\
Print nr_kdamonds and, for each kdamond, its state, thread pid, operations, targets,
intervals and schemes (with their stats when the kernel last updated them), marking the
ones damo-collect started. Writes nothing anywhere.

examples:
  damo-collect status
  damo-collect status --json
"""


def prepare_parser(parser):
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    _options.add_sysfs_options(parser)


def collect_status(tree, owner):
    from damo_pipe.collect.kdamond import describe_kdamond

    tree.check_available()
    nr = tree.read_int("kdamonds/nr_kdamonds")
    owned = {e["kdamond_idx"]: e for e in owner.find(tree.root)}
    out = {"admin_root": tree.root, "nr_kdamonds": nr, "kdamonds": [], "state_file": owner.path}
    for i in range(nr):
        kd = "kdamonds/%d" % i
        ctx = kd + "/contexts/0"
        info = {"index": i, "state": tree.read_opt(kd + "/state"), "pid": tree.read_opt(kd + "/pid"),
                "description": describe_kdamond(tree, i)}
        if tree.exists(ctx):
            iv = ctx + "/monitoring_attrs/intervals"
            info["intervals_us"] = [tree.read_opt(iv + "/" + f) for f in ("sample_us", "aggr_us", "update_us")]
            info["nr_regions_range"] = [tree.read_opt(ctx + "/monitoring_attrs/nr_regions/" + f)
                                        for f in ("min", "max")]
            schemes = []
            try:
                ns = int(tree.read_opt(ctx + "/schemes/nr_schemes", "0"))
            except ValueError:
                ns = 0
            for s in range(ns):
                sd = "%s/schemes/%d" % (ctx, s)
                st = {}
                if tree.exists(sd + "/stats"):
                    for f in sorted(os.listdir(tree.path(sd + "/stats"))):
                        st[f] = tree.read_opt(sd + "/stats/" + f)
                schemes.append({"action": tree.read_opt(sd + "/action"), "stats": st})
            info["schemes"] = schemes
        e = owned.get(i)
        if e is not None and str(e.get("kdamond_pid")) == str(info["pid"]):
            alive = e.get("owner_pid") and os.path.exists("/proc/%d" % e["owner_pid"])
            info["owner"] = {"mode": e.get("mode"), "owner_pid": e.get("owner_pid"),
                             "owner_alive": bool(alive), "output": e.get("output"),
                             "started_unix": e.get("started_unix")}
        out["kdamonds"].append(info)
    return out


def run(args):
    tree, owner = _options.open_tree_and_ownership(args)
    st = collect_status(tree, owner)
    if args.json:
        print(json.dumps(st, indent=1))
        return 0
    print("DAMON sysfs: %s" % st["admin_root"])
    print("nr_kdamonds: %d" % st["nr_kdamonds"])
    for k in st["kdamonds"]:
        print(k["description"])
        if "intervals_us" in k:
            print("  intervals (us): sample %s, aggr %s, update %s; regions %s..%s"
                  % tuple(k["intervals_us"] + k["nr_regions_range"]))
        for j, s in enumerate(k.get("schemes", [])):
            stats = ", ".join("%s %s" % kv for kv in s["stats"].items())
            print("  scheme %d: %s%s" % (j, s["action"], " (%s)" % stats if stats else ""))
        o = k.get("owner")
        if o:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(o["started_unix"])) \
                if o.get("started_unix") else "?"
            print("  started by damo-collect %s (process %s, %s) at %s%s"
                  % (o["mode"], o["owner_pid"], "running" if o["owner_alive"] else "exited",
                     started, ", writing " + o["output"] if o.get("output") else ""))
        else:
            print("  not started by damo-collect")
    if not st["kdamonds"]:
        print("no kdamond runs")
    return 0
