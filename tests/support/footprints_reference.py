"""damo's .mem_footprint snapshots as plain dicts, and their values by damo's formulas."""


def snapshot(t, procs=(), sys=(1000, 400)):
    """A snapshot at T: PROCS as (pid, size, resident) in pages, SYS as (total, free) in KiB."""
    fps = [{"pid": pid, "footprint": {"size": size, "resident": rss, "shared": 1, "trs": 2,
                                      "lrs": 0, "drs": 3, "dt": 0}} for pid, size, rss in procs]
    if sys is not None:
        fps.append({"pid": None, "footprint": {"total": sys[0], "free": sys[1], "available": None,
                                               "buffers": 5, "cached": 6}})
    return {"time": t, "footprints": fps}


SNAPS = [
    snapshot(100.5, [(1, 10, 4), (2, 20, 8)], (1000, 400)),
    snapshot(101.5, [(1, 30, 2)], (1000, 900)),
    snapshot(102.5, [], None),
    snapshot(103.5, [(1, 5, 5), (2, 5, 5), (1, 7, 1)], (2000, 100)),   # pid 1 twice: last wins
]


def reference(snaps, metric):
    """damo's get_dists, written from its description."""
    out = []
    for s in snaps:
        by_pid = {}
        for e in s["footprints"]:
            by_pid[e["pid"]] = e["footprint"]
        v = 0
        for pid, fp in by_pid.items():
            if metric == "sys_used":
                if pid is None:
                    v = (fp["total"] - fp["free"]) * 1024
            elif pid is not None:
                v += fp["size" if metric == "vsz" else "resident"] * 4096
        out.append(v)
    return out
