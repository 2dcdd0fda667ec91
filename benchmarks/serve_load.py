"""`backbonekit serve` under load, on loopback only, bounded: a fixed count of requests per phase (and a time cap),
then it stops by itself.

1. Load: 1, 4 and 16 concurrent clients, each posting one image a request (multipart, as curl -F does) with the API
   key; throughput (images/s), latency p50/p95/p99, mean batch size (from /metrics), failed requests. Beside it, the
   same model's bare runtime (the function predict and serve share, on already-prepared tensors, in this process) at
   batch 1 and at each phase's mean batch size.
2. Fuzz: 1,000 malformed requests (empty body, truncated PNG, text as image, a PNG header declaring 100,000² pixels,
   wrong JSON, wrong API key, wrong content type, a form without a file); each must get a 4xx with a one-line
   reason; then /health must answer and the server's resident memory (VmRSS) must have grown < 10%.

The model: ResNet-18 at --image-size, trained for one batch on noise images (its weights do not matter for timing),
or --checkpoint. Server and clients share the cores given by --cores (default: core 1, one thread each): the
clients' own CPU time counts against the server here, so served/bare is a lower bound.

Run:  taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_load.py [--requests 240]
          [--image-size 96] [--max-batch 8] [--max-wait-ms 5] [--fuzz 1000] [--out benchmarks/results/serve_load_cpu]
"""
import argparse
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serve.live import free_port, wait_until_up  # noqa: E402 - the tests' own helpers

KEY = "bench-key-0123456789"
CLIENTS = (1, 4, 16)


def make_checkpoint(work: Path, image_size: int) -> Path:
    from backbonekit.cli import main as cli

    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog", "fox")):
        (work / "data" / name).mkdir(parents=True, exist_ok=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)).save(
                work / "data" / name / f"{i}.png")
    assert cli(["train", "classify", "--data", str(work / "data"), "--model", "resnet18", "--image-size",
                str(image_size), "--epochs", "1", "--batch-size", "8", "--limit-train-batches", "1",
                "--limit-val-batches", "1", "--progress", "lines", "--out", str(work / "runs"), "--name", "t"]) == 0
    return work / "runs" / "classify" / "t" / "best.ckpt"


def jpeg(image_size: int, seed: int = 1) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def start_server(checkpoint: Path, port: int, args) -> subprocess.Popen:
    command = ["taskset", "-c", args.cores, sys.executable, "-m", "backbonekit", "serve", "--checkpoint",
               str(checkpoint), "--port", str(port), "--max-batch", str(args.max_batch), "--max-wait-ms",
               str(args.max_wait_ms), "--max-queue", "256"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BACKBONEKIT_API_KEY": KEY}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def batch_totals(url: str) -> tuple[float, float]:
    """(images run, batches run) so far, from /metrics."""
    text = requests.get(url + "/metrics", headers={"X-API-Key": KEY}, timeout=10).text
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return float(values.get("backbonekit_batch_size_sum", 0)), float(values.get("backbonekit_batch_size_count", 0))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def multipart(image: bytes) -> tuple[bytes, str]:
    """The body curl -F file=@x.jpg sends, built once: the clients spend their (shared) CPU on little but I/O."""
    boundary = "benchboundary7MA4YWxkTrZu0gW"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_phase(url: str, clients: int, total: int, image: bytes, max_seconds: float, pid: int) -> dict:
    each = max(1, total // clients)
    deadline = time.monotonic() + max_seconds
    images_before, batches_before = batch_totals(url)
    body, content_type = multipart(image)
    host, port = url.removeprefix("http://").split(":")

    def client(_):
        connection, latencies, errors = http.client.HTTPConnection(host, int(port), timeout=60), [], 0
        headers = {"X-API-Key": KEY, "Content-Type": content_type}
        for _ in range(each):
            if time.monotonic() > deadline:
                break
            start = time.perf_counter()
            connection.request("POST", "/v1/predict", body, headers)
            answer = connection.getresponse()
            data = answer.read()
            latencies.append(time.perf_counter() - start)
            errors += answer.status != 200 or b'"results"' not in data
        connection.close()
        return latencies, errors

    start, server_cpu, client_cpu = time.perf_counter(), cpu_seconds(pid), time.process_time()
    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(client, range(clients)))
    wall = time.perf_counter() - start
    server_cpu, client_cpu = cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu
    latencies = [t for lat, _ in done for t in lat]
    images_after, batches_after = batch_totals(url)
    ms = [1000 * t for t in latencies]
    return {"clients": clients, "requests": len(latencies), "errors": sum(e for _, e in done),
            "seconds": round(wall, 2), "images_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1),
            "p99_ms": round(percentile(ms, 99), 1),
            "mean_batch": round((images_after - images_before) / max(1, batches_after - batches_before), 2),
            "server_cpu_ms_per_image": round(1000 * server_cpu / max(1, len(latencies)), 2),
            "client_cpu_ms_per_image": round(1000 * client_cpu / max(1, len(latencies)), 2)}


class Bare:
    """The model alone, in this process: predict's and serve's shared function on already-prepared tensors."""

    def __init__(self, checkpoint: Path, image: bytes):
        from backbonekit.classification.data import build_eval_transform
        from backbonekit.tasks import all_tasks
        from backbonekit.training.inference import load_for_inference

        self.trained, self.device = load_for_inference(checkpoint, all_tasks()["classify"], "cpu", "torch")
        self.names = list(self.trained.cfg.class_names)
        self.transform = build_eval_transform(self.trained.cfg.image_size)
        self.image = image
        self.x = self.transform(Image.open(io.BytesIO(image)).convert("RGB"))

    def prepare_cpu_ms(self, rounds: int = 50) -> float:
        """CPU ms to decode the uploaded JPEG and prepare it as predict does (serve does the same per image)."""
        cpu = time.process_time()
        for _ in range(rounds):
            self.transform(Image.open(io.BytesIO(self.image)).convert("RGB"))
        return round(1000 * (time.process_time() - cpu) / rounds, 2)

    def __call__(self, batch: int, rounds: int = 20) -> dict:
        """images/s and ms a batch (median of ``rounds`` after a warm-up call)."""
        from backbonekit.classification.predict import top_classes

        tensor = self.x[None].expand(batch, -1, -1, -1).contiguous()
        top_classes(self.trained, tensor, self.names, 3, self.device)
        times, cpu = [], time.process_time()
        for _ in range(rounds):
            start = time.perf_counter()
            top_classes(self.trained, tensor, self.names, 3, self.device)
            times.append(time.perf_counter() - start)
        cpu = time.process_time() - cpu
        median = statistics.median(times)
        return {"batch": batch, "images_per_s": round(batch / median, 1), "ms_per_batch": round(1000 * median, 1),
                "p99_ms_per_batch": round(1000 * percentile(times, 99), 1),
                "cpu_ms_per_image": round(1000 * cpu / (rounds * batch), 2)}


def measured(url: str, bare: Bare, clients: int, args, image: bytes, pid: int) -> dict:
    """``args.rounds`` rounds of (the served phase, then the bare model at the batch size it ran): other jobs on a
    shared core change both within a minute, so each served figure is set beside a bare one taken right after."""
    rounds = []
    for _ in range(args.rounds):
        served = load_phase(url, clients, args.requests, image, args.max_seconds, pid)
        served["bare"] = bare(max(1, round(served["mean_batch"])))
        served["served_over_bare"] = round(served["images_per_s"] / served["bare"]["images_per_s"], 3)
        # what the images cost in CPU time, served (server + clients) against bare: the other jobs drop out
        served_cpu = served["server_cpu_ms_per_image"] + served["client_cpu_ms_per_image"]
        served["cpu_bare_over_served"] = round(served["bare"]["cpu_ms_per_image"] / served_cpu, 3)
        # the same with decoding and preparing the image counted in bare too (predict does both, as serve does)
        served["prepare_cpu_ms"] = bare.prepare_cpu_ms()
        served["cpu_bare_with_prepare_over_served"] = round(
            (served["bare"]["cpu_ms_per_image"] + served["prepare_cpu_ms"]) / served_cpu, 3)
        rounds.append(served)
    return {"clients": clients, "rounds": rounds,
            "median_served_over_bare": statistics.median(r["served_over_bare"] for r in rounds),
            "median_cpu_bare_over_served": statistics.median(r["cpu_bare_over_served"] for r in rounds),
            "median_cpu_bare_with_prepare_over_served": statistics.median(
                r["cpu_bare_with_prepare_over_served"] for r in rounds)}


def huge_png() -> bytes:
    """A 1×1 PNG whose header says 100,000 × 100,000 pixels (CRC fixed: a decoder believes it)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = (100_000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def malformed(image: bytes) -> list[tuple[str, dict, bytes]]:
    """(kind, headers, body) of each malformed request the fuzz run cycles through."""
    key = {"X-API-Key": KEY}
    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(png, "PNG")
    form = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nhi\r\n--b--\r\n'
    return [("empty body", {**key, "Content-Type": "image/png"}, b""),
            ("truncated PNG", {**key, "Content-Type": "image/png"}, png.getvalue()[:4000]),
            ("text as image", {**key, "Content-Type": "image/jpeg"}, b"this is not a picture " * 20),
            ("huge dimensions", {**key, "Content-Type": "image/png"}, huge_png()),
            ("wrong JSON", {**key, "Content-Type": "application/json"}, b'{"images": [12, "x"'),
            ("wrong key", {"X-API-Key": "guess", "Content-Type": "image/jpeg"}, image),
            ("wrong content type", {**key, "Content-Type": "text/plain"}, b"hello"),
            ("form without a file", {**key, "Content-Type": "multipart/form-data; boundary=b"}, form)]


def fuzz(url: str, pid: int, count: int, image: bytes) -> dict:
    kinds = malformed(image)
    rss_before = rss_mb(pid)
    statuses: dict[str, dict[int, int]] = {kind: {} for kind, _, _ in kinds}
    not_one_line = 0
    session = requests.Session()
    for i in range(count):
        kind, headers, body = kinds[i % len(kinds)]
        answer = session.post(url + "/v1/predict", data=body, headers=headers, timeout=30)
        statuses[kind][answer.status_code] = statuses[kind].get(answer.status_code, 0) + 1
        reason = answer.json().get("error", "") if answer.headers.get("content-type", "").startswith(
            "application/json") else ""
        not_one_line += not reason or "\n" in reason
    health = requests.get(url + "/health", timeout=10)
    rss_after = rss_mb(pid)
    all_4xx = all(400 <= code < 500 for counts in statuses.values() for code in counts)
    return {"requests": count, "statuses": statuses, "all_4xx": all_4xx, "without_one_line_reason": not_one_line,
            "health_after": health.status_code, "rss_mb_before": round(rss_before, 1),
            "rss_mb_after": round(rss_after, 1), "rss_growth_pct": round(100 * (rss_after / rss_before - 1), 2)}


def markdown(result: dict) -> str:
    lines = [f"# serve_load: {result['setup']}", "",
             "Each round: the served phase, then the bare model at the batch size the server ran (right after).", "",
             "| clients | round | requests | errors | images/s | p50 ms | p95 ms | p99 ms | mean batch | bare images/s "
             "(batch) | bare ms a batch (p99) | served / bare | CPU ms an image: server + clients / bare + decode "
             "and prepare | CPU bare / served | CPU (bare + prepare) / served |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for phase in result["load"]:
        for n, row in enumerate(phase["rounds"], 1):
            bare = row["bare"]
            lines.append(f"| {row['clients']} | {n} | {row['requests']} | {row['errors']} | {row['images_per_s']} | "
                         f"{row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | {row['mean_batch']} | "
                         f"{bare['images_per_s']} ({bare['batch']}) | {bare['ms_per_batch']} "
                         f"({bare['p99_ms_per_batch']}) | {row['served_over_bare']:.2f} | "
                         f"{row['server_cpu_ms_per_image']} + {row['client_cpu_ms_per_image']} / "
                         f"{bare['cpu_ms_per_image']} + {row['prepare_cpu_ms']} | {row['cpu_bare_over_served']:.2f} | "
                         f"{row['cpu_bare_with_prepare_over_served']:.2f} |")
    f = result["fuzz"]
    lines += ["", f"Fuzz: {f['requests']} malformed requests; every answer a 4xx: {f['all_4xx']}; answers without "
              f"a one-line reason: {f['without_one_line_reason']}; /health after: {f['health_after']}; RSS "
              f"{f['rss_mb_before']} → {f['rss_mb_after']} MB ({f['rss_growth_pct']:+.2f}%).", "",
              "| kind | statuses |", "|---|---|"]
    lines += [f"| {kind} | {counts} |" for kind, counts in f["statuses"].items()]
    return "\n".join(lines) + "\n"


def run(args, checkpoint: Path) -> dict:
    image = jpeg(args.image_size)
    torch.set_num_threads(1)
    bare = Bare(checkpoint, image)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(checkpoint, port, args)
    try:
        wait_until_up(server, url, 120)
        load_phase(url, 4, 40, image, 30, server.pid)  # warm-up: first-call allocations, thread pools
        phases = [measured(url, bare, clients, args, image, server.pid) for clients in CLIENTS]
        fuzzed = fuzz(url, server.pid, args.fuzz, image)
    finally:
        server.terminate()
        server.wait(60)
    setup = (f"ResNet-18 classifier at {args.image_size}², torch runtime, --max-batch {args.max_batch} --max-wait-ms "
             f"{args.max_wait_ms}; server, clients and the bare model on cores {args.cores}, one torch thread; a "
             "machine shared with other jobs")
    return {"setup": setup, "load": phases, "fuzz": fuzzed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a classify checkpoint (default: a ResNet-18 trained one batch)")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--requests", type=int, default=240, help="requests per load phase (split among clients)")
    parser.add_argument("--rounds", type=int, default=3, help="served phase + bare measurement pairs per client "
                                                              "count")
    parser.add_argument("--max-seconds", type=float, default=120, help="cap on each load phase")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=5)
    parser.add_argument("--fuzz", type=int, default=1000)
    parser.add_argument("--cores", default="1", help="taskset core list for the server")
    parser.add_argument("--out", default="benchmarks/results/serve_load_cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        checkpoint = Path(args.checkpoint) if args.checkpoint else make_checkpoint(Path(work), args.image_size)
        result = run(args, checkpoint)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
