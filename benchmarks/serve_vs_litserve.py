"""Which server stack for `backbonekit serve`: the same model behind `backbonekit serve` (FastAPI + uvicorn, batching
of its own) and behind LitServe (its LitAPI batching, an inference worker process beside the API process), the same
requests (JSON with a base64 JPEG: LitServe hands the worker process a parsed body, and a multipart upload's spooled
file does not cross processes), 1 and 16 clients on loopback, each server on the same core.

Needs LitServe, which backbonekit does not depend on: ``pip install --no-deps --target /tmp/lspkgs litserve pyzmq``
and ``PYTHONPATH=/tmp/lspkgs``.

Run:  taskset -c 1 env OMP_NUM_THREADS=1 PYTHONPATH=/tmp/lspkgs .venv/bin/python benchmarks/serve_vs_litserve.py
          --checkpoint RUN/best.ckpt [--requests 160] [--out benchmarks/results/serve_vs_litserve_cpu]
"""
import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import free_port, jpeg, percentile, wait_until_up  # noqa: E402

LITSERVE_APP = '''
import base64, sys
import litserve as ls
from backbonekit.serve.model import ServedModel
from backbonekit.serve.options import ServeOptions
from backbonekit.serve.uploads import decode_upload

class Classify(ls.LitAPI):
    def setup(self, device):
        self.model = ServedModel(ServeOptions(checkpoint=sys.argv[1], max_batch=8))
    def decode_request(self, request):
        return self.model.prepare(decode_upload("image", base64.b64decode(request["images"][0]), 40_000_000))
    def batch(self, inputs):
        return list(inputs)
    def predict(self, prepared):
        return self.model.run(prepared)
    def unbatch(self, rows):
        return rows
    def encode_response(self, row):
        return {"task": "classify", "results": [{"path": "image", **row}]}

if __name__ == "__main__":
    api = Classify(max_batch_size=8, batch_timeout=float(sys.argv[3]) / 1000)
    ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=60).run(port=int(sys.argv[2]),
                                                                              generate_client_file=False)
'''


def family(root: int) -> set[int]:
    """A process and all its descendants."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    found, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grown = bool(more)
    return found


def stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server and every process it started (LitServe's workers outlive their parent otherwise)."""
    pids = family(server.pid)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    server.wait(60)


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process and all its descendants (LitServe runs its workers as child processes)."""
    parents, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid], cpu[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    family, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in family} - family
        family |= more
        grown = bool(more)
    return sum(cpu.get(pid, 0.0) for pid in family)


def phase(port: int, path: str, body: bytes, clients: int, total: int, pid: int) -> dict:
    def client(_):
        connection, latencies, errors = http.client.HTTPConnection("127.0.0.1", port, timeout=60), [], 0
        for _ in range(max(1, total // clients)):
            start = time.perf_counter()
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            data = answer.read()
            latencies.append(time.perf_counter() - start)
            errors += answer.status != 200 or b'"top"' not in data
        connection.close()
        return latencies, errors

    start, cpu = time.perf_counter(), tree_cpu_seconds(pid)
    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(client, range(clients)))
    wall, cpu = time.perf_counter() - start, tree_cpu_seconds(pid) - cpu
    ms = [1000 * t for lat, _ in done for t in lat]
    return {"clients": clients, "requests": len(ms), "errors": sum(e for _, e in done),
            "images_per_s": round(len(ms) / wall, 1), "p50_ms": round(percentile(ms, 50), 1),
            "p99_ms": round(percentile(ms, 99), 1), "server_cpu_ms_per_image": round(1000 * cpu / len(ms), 2)}


def serve(kind: str, checkpoint: str, port: int, wait_ms: float, work: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if kind == "backbonekit":
        command = [sys.executable, "-m", "backbonekit", "serve", "--checkpoint", checkpoint, "--port", str(port),
                   "--max-batch", "8", "--max-wait-ms", str(wait_ms)]
    else:
        (work / "litserve_app.py").write_text(LITSERVE_APP)
        command = [sys.executable, str(work / "litserve_app.py"), checkpoint, str(port), str(wait_ms)]
    return subprocess.Popen(["taskset", "-c", "1", *command], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--max-wait-ms", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/serve_vs_litserve_cpu")
    args = parser.parse_args()
    body = json.dumps({"images": [base64.b64encode(jpeg(args.image_size)).decode()]}).encode()
    work = Path(tempfile.mkdtemp())  # the LitServe app's file
    rows = []
    for round_ in range(args.rounds):  # the two stacks alternate: other jobs on the core hit both alike
        for kind, path in (("backbonekit", "/v1/predict"), ("litserve", "/predict")):
            port = free_port()
            server = serve(kind, args.checkpoint, port, args.max_wait_ms, work)
            try:
                wait_until_up(server, f"http://127.0.0.1:{port}", 180)
                phase(port, path, body, 4, 40, server.pid)  # warm-up
                for clients in (1, 16):
                    rows.append({"stack": kind, "round": round_ + 1,
                                 **phase(port, path, body, clients, args.requests, server.pid)})
            finally:
                stop(server)
    shutil.rmtree(work)
    setup = (f"# serve_vs_litserve: ResNet-18 classifier at {args.image_size}², JSON base64 JPEG requests, max batch "
             f"8, wait {args.max_wait_ms:g} ms; servers and clients on core 1, one torch thread; a machine shared with "
             "other jobs (wall figures swing with them; CPU ms an image counts the server's processes only)")
    lines = [setup, "",
             "| stack | round | clients | requests | errors | images/s | p50 ms | p99 ms | server CPU ms an image |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['stack']} | {r['round']} | {r['clients']} | {r['requests']} | {r['errors']} | "
              f"{r['images_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['server_cpu_ms_per_image']} |" for r in rows]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    Path(args.out).with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
