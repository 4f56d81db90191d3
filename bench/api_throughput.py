"""GET and PUT of image templates at 64 concurrent connections, against the bare /healthz endpoint of the
same server in the same run; then listing 10,000 templates through all pages.

    .venv/bin/python bench/api_throughput.py [--seconds 10] [--templates 10000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import time

from bench.common import save, start_server, wrk

SUB = "00000000-0000-0000-0000-0000000000be"
V = "2025-10-01"
BODY = {
    "location": "westus",
    "identity": {"type": "None"},
    "properties": {
        "source": {"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
        "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
        "distribute": [{"type": "VHD", "runOutputName": "vhd"}],
    },
}


LIST_SUB = "00000000-0000-0000-0000-00000000015b"


def tpl_path(group: str, name: str, sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.VirtualMachineImages/imageTemplates/{name}"


PUT_SCRIPT = """
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
request = function()
  counter = counter + 1
  return wrk.format(nil, "%s" .. tid .. "-" .. counter .. "?api-version=%s")
end
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--templates", type=int, default=10000)
    args = ap.parse_args()
    srv = start_server("--page-size", "1000")
    try:
        auth = {"Authorization": f"Bearer {srv.token}"}
        with srv.client() as http:
            r = http.put(tpl_path("bench", "get-me"), params={"api-version": V}, json=BODY)
            assert r.status_code == 201, r.text
            time.sleep(0.5)
        c, s = args.connections, args.seconds
        bare = wrk(srv.url + "/healthz", connections=c, seconds=s)
        get = wrk(srv.url + tpl_path("bench", "get-me") + f"?api-version={V}", connections=c, seconds=s, headers=auth)
        put = wrk(srv.url, connections=c, seconds=s, headers=auth,
                  script=PUT_SCRIPT % (json.dumps(BODY), tpl_path("bench-put", "t"), V))
        result = {
            "connections": c, "seconds": s, "bare": bare, "get": get, "put": put,
            "get_ratio": round(get["rps"] / bare["rps"], 3), "put_ratio": round(put["rps"] / bare["rps"], 3),
        }
        # 10,000 templates, then every page of the subscription list.
        with srv.client() as http:
            def create(i: int) -> int:
                return http.put(tpl_path(f"list-{i % 10}", f"t{i}", LIST_SUB), params={"api-version": V}, json=BODY).status_code

            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                codes = list(pool.map(create, range(args.templates)))
            assert all(code in (200, 201) for code in codes)
            created_s = time.perf_counter() - t0
            url = f"/subscriptions/{LIST_SUB}/providers/Microsoft.VirtualMachineImages/imageTemplates"
            t0 = time.perf_counter()
            count, pages, nxt = 0, 0, url + f"?api-version={V}"
            while nxt:
                body = http.get(nxt).json()
                count += len(body["value"])
                pages += 1
                nxt = body.get("nextLink")
            list_s = time.perf_counter() - t0
        result["list"] = {"templates": count, "pages": pages, "seconds": round(list_s, 3),
                          "create_seconds": round(created_s, 1)}
        print(json.dumps(result, indent=2))
        print("saved", save("api_throughput", result))
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
