"""Import a sparse raw disk into the artifact store (qcow2, sha256, fsync) and export it as an Azure fixed VHD,
against ``cp --sparse=always`` of the same raw file in the same run (page cache warm; ``sync`` before each
timed step, outside the timing, so no step pays for another's writeback); with the peak RSS of the vmforge process
 at two image sizes, to show it stays flat.

    .venv/bin/python -m bench.artifacts_import_export [--size-gib 4] [--data-mb 800] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1024 * 1024


def make_disk(path: Path, size: int, data: int) -> None:
    """A sparse raw disk of ``size`` bytes with ``data`` bytes of random data in 8 MiB runs spread over it, and an
    MBR."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), str(size)], check=True)
    chunk = 8 * MIB
    n = data // chunk
    rnd = random.Random(42)
    block = rnd.randbytes(chunk)
    with open(path, "r+b") as f:
        for i in range(n):
            f.seek((size // n) * i)
            f.write(block[i % 7:] + block[: i % 7])  # distinct runs, incompressible
        # An MBR with one Linux partition: the store refuses a raw file with no partition table or file system.
        f.seek(446)
        entry = struct.pack("<B3sB3sII", 0, bytes(3), 0x83, bytes(3), 2048, size // 512 - 2048)
        f.write(entry + bytes(48) + b"\x55\xaa")


def child(raw: str, work: str, durable: str) -> None:
    """Runs in a fresh process: import + export, printing timings and peak RSS as JSON."""
    from vmforge.artifacts import Artifacts
    from vmforge.store.db import Database

    w = Path(work)
    db = Database(f"sqlite:///{w / 'vmforge.db'}")
    db.migrate()
    arts = Artifacts(db, w, [Path(raw).parent], durable=durable == "1")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    arts.images.put("sub", "rg", "img", {"location": "westus", "properties": {"storageProfile": {"osDisk": {
        "osType": "Linux", "osState": "Generalized", "blobUri": Path(raw).as_uri()}}}})
    t1 = time.perf_counter()
    os.sync()  # every timed step starts with no dirty pages (cp gets the same)
    t1 = time.perf_counter()
    out = arts.export("/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/images/img", "vhd",
                      w / "out.vhd")
    t2 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "export_s": t2 - t1, "vhd_bytes": out.stat().st_size,
                      "rss_start_mb": base / 1024,
                      "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      }))


def measure(size: int, data: int, runs: int, durable: bool) -> dict:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        raw = Path(d) / "src" / "disk.raw"
        raw.parent.mkdir()
        make_disk(raw, size, data)
        cps, vm = [], []
        for i in range(runs):
            os.sync()
            t = time.perf_counter()
            subprocess.run(["cp", "--sparse=always", str(raw), str(Path(d) / f"cp{i}.raw")], check=True)
            cps.append(time.perf_counter() - t)
            work = Path(d) / f"w{i}"
            work.mkdir()
            os.sync()
            out = subprocess.run([sys.executable, "-m", "bench.artifacts_import_export", "--child", str(raw),
                                  str(work), "1" if durable else "0"], capture_output=True, text=True, check=True)
            vm.append(json.loads(out.stdout.strip().splitlines()[-1]))
            subprocess.run(["rm", "-rf", str(work), str(Path(d) / f"cp{i}.raw")], check=True)
        total = [r["import_s"] + r["export_s"] for r in vm]
        return {"size_gib": size / 1024**3, "data_mb": data / MIB, "durable": durable, "runs": runs,
                "cp_sparse_s": statistics.median(cps), "import_s": statistics.median(r["import_s"] for r in vm),
                "export_s": statistics.median(r["export_s"] for r in vm), "vmforge_total_s": statistics.median(total),
                "ratio": statistics.median(total) / statistics.median(cps),
                "rss_peak_mb": max(r["rss_peak_mb"] for r in vm)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-gib", type=float, default=4)
    ap.add_argument("--data-mb", type=int, default=800)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    size, data = int(args.size_gib * 1024**3), args.data_mb * MIB
    results = [measure(size // 4, data // 4, args.runs, True), measure(size, data, args.runs, True),
               measure(size, data, args.runs, False)]
    for r in results:
        print(json.dumps(r))
    try:
        from bench.common import save

        print(save("artifacts_import_export", {"results": results}))
    except ImportError:
        pass


if __name__ == "__main__":
    main()
