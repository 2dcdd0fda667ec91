"""Each endpoint for each task against the task's own ``predict`` on the same image: the same classes, boxes and
sequences, field for field, from a model trained in the test session (``tiny_runs``)."""
import itertools
import json

import pytest
from fastapi.testclient import TestClient

from backbonekit.cli import main
from backbonekit.serve.app import create_app
from backbonekit.serve.model import ServedModel
from backbonekit.serve.options import ServeOptions

pytestmark = pytest.mark.usefixtures("one_thread")
TASKS = ("classify", "detect", "sequence")


@pytest.fixture(scope="module")
def clients(tiny_runs):
    """A running app per task (lifespan started), with top-k 3 and a detect threshold low enough to keep boxes."""
    made = {}
    for task in TASKS:
        options = ServeOptions(checkpoint=str(tiny_runs[task] / "best.ckpt"), top_k=3, score_threshold=0.0,
                               max_boxes=2, max_wait_ms=1)
        made[task] = TestClient(create_app(ServedModel(options), options)).__enter__()
    yield made
    for client in made.values():
        client.__exit__(None, None, None)


def images_of(tiny_runs, task, n=2):
    return sorted(p for p in tiny_runs["data"][task].rglob("*") if p.suffix in (".jpg", ".png"))[:n]


def predicted(task, checkpoint, images, capsys) -> list[dict]:
    """predict's own JSON lines for ``images``, predicted together (one batch, as the server runs them)."""
    extra = ["--top-k", "3"] if task == "classify" else ["--score-threshold", "0.0"] if task == "detect" else []
    capsys.readouterr()
    assert main(["predict", task, "--checkpoint", str(checkpoint), *map(str, images), "--format", "json", "--out",
                 "-", *extra]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.strip().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("task", TASKS)
def test_predict_answers_what_predict_writes(task, clients, tiny_runs, capsys):
    images = images_of(tiny_runs, task)
    files = [("file", (p.name, p.read_bytes(), "image/png")) for p in images]
    answer = clients[task].post("/v1/predict", files=files)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["task"] == task and len(body["results"]) == len(images)
    rows = predicted(task, tiny_runs[task] / "best.ckpt", images, capsys)
    assert len(rows) == len(images)
    for image, row, expected in zip(images, body["results"], rows):
        field = "file_path" if task == "sequence" else "path"
        assert row[field] == image.name
        expected[field] = image.name  # predict names the file on disk; the server, the upload's name
        assert row == expected
    if task == "detect":
        assert sum(len(row["detections"]) for row in body["results"]) > 0  # boxes were compared, not two empties


@pytest.mark.parametrize("task", TASKS)
def test_model_health_and_metrics_describe_the_served_model(task, clients, tiny_runs):
    client = clients[task]
    model = client.get("/v1/model").json()
    assert model["task"] == task and model["runtime"] == "torch" and model["checkpoint"] == "best.ckpt"
    assert model["classes"] and len(model["input_size"]) == 2 and model["explain"] is True
    assert model["run"]["epochs"] == 1 and str(model["run"]["batch_size"]) == "4"  # from the run record
    assert str(tiny_runs[task]) not in json.dumps(model)  # no path of the server's disk leaves it
    assert client.get("/health").json()["status"] == "ok"
    client.post("/v1/predict", content=b"", headers={"content-type": "image/png"})
    text = client.get("/metrics").text
    assert 'backbonekit_requests_total{route="/v1/model",status="200"}' in text
    assert 'backbonekit_errors_total{route="/v1/predict",status="400"}' in text
    assert "backbonekit_batch_size_bucket" in text and "backbonekit_request_seconds_bucket" in text


@pytest.mark.parametrize("task", TASKS)
def test_explain_gives_a_map_for_each_class_box_or_step(task, clients, tiny_runs):
    image = images_of(tiny_runs, task, 1)[0]
    client = clients[task]
    row = client.post("/v1/predict", files={"file": (image.name, image.read_bytes())}).json()["results"][0]
    pngs = client.post("/v1/explain", files={"file": (image.name, image.read_bytes())})
    arrays = client.post("/v1/explain?format=array", files={"file": (image.name, image.read_bytes())})
    assert pngs.status_code == arrays.status_code == 200, pngs.text
    maps = pngs.json()["maps"]
    expected = {"classify": 3, "detect": min(2, len(row.get("detections", []))),
                "sequence": len(list(itertools.takewhile(bool, row.get("label", []))))}[task]
    assert len(maps) == expected == len(arrays.json()["maps"])
    assert all(m["overlay"].startswith("data:image/png;base64,") for m in maps)
    if task == "classify":
        assert [m["caption"].split()[0] for m in maps] == [name for name, _ in row["top"]]
    for m in arrays.json()["maps"]:
        values = [v for line in m["values"] for v in line]
        assert 0 <= min(values) <= max(values) <= 1


def test_another_runtime_serves_what_predict_gives_in_it(tiny_runs, capsys):
    pytest.importorskip("onnxruntime")
    checkpoint = tiny_runs["classify"] / "best.ckpt"
    images = images_of(tiny_runs, "classify")
    options = ServeOptions(checkpoint=str(checkpoint), runtime="onnxruntime", top_k=3)
    with TestClient(create_app(ServedModel(options), options)) as client:
        assert client.get("/v1/model").json()["runtime"] == "onnxruntime"
        files = [("file", (p.name, p.read_bytes())) for p in images]
        rows = client.post("/v1/predict", files=files).json()["results"]
    capsys.readouterr()
    assert main(["predict", "classify", "--checkpoint", str(checkpoint), *map(str, images), "--format", "json",
                 "--out", "-", "--top-k", "3", "--runtime", "onnxruntime"]) == 0
    expected = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert rows == [{**row, "path": image.name} for row, image in zip(expected, images)]
