"""Every safety rule of `serve` has a request here that trips it, each answered with its status and one line."""
import base64

import pytest
from fastapi.testclient import TestClient

from backbonekit.cli import build_parser
from backbonekit.serve.command import options_from_args
from backbonekit.serve.options import API_KEY_ENV
from serve.fakes import EchoModel, echo_app, noise_png, png_bytes


def refused(answer, status: int) -> str:
    assert answer.status_code == status, answer.text
    reason = answer.json()["error"]
    assert reason and "\n" not in reason
    return reason


def test_the_default_address_is_loopback_only():
    args = build_parser().parse_args(["serve", "--checkpoint", "c.ckpt"])
    assert options_from_args(args).host == "127.0.0.1"


def test_a_set_api_key_is_required_on_every_model_route(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "s3cret-key")
    with TestClient(echo_app()) as client:
        for path in ("/v1/model", "/metrics", "/v1/unknown"):
            assert refused(client.get(path), 401).startswith("missing or wrong API key")
        files = {"file": ("a.png", png_bytes())}
        refused(client.post("/v1/predict", files=files), 401)
        refused(client.post("/v1/predict", files=files, headers={"Authorization": "Bearer s3cret-kex"}), 401)
        refused(client.post("/v1/predict", files=files, headers={"X-API-Key": "s3cret"}), 401)
        right = {"Authorization": "Bearer s3cret-key"}
        assert client.post("/v1/predict", files=files, headers=right).status_code == 200
        assert client.get("/v1/model", headers={"X-API-Key": "s3cret-key"}).status_code == 200
        assert client.get("/health").status_code == client.get("/").status_code == 200  # open: they hold nothing


def test_the_api_key_is_compared_in_constant_time():
    import inspect

    from backbonekit.serve import safety

    assert "hmac.compare_digest(" in inspect.getsource(safety.Guard.refusal)


def test_a_body_over_the_limit_is_refused_whether_or_not_it_says_its_length():
    with TestClient(echo_app(max_body_mb=0.001)) as client:  # 1 KiB
        big = png_bytes(size=(64, 64)) + b"\0" * 2048
        refused(client.post("/v1/predict", content=big, headers={"content-type": "image/png"}), 413)

        def chunks():  # no Content-Length: counted as it arrives
            yield big[:1000]
            yield big[1000:]

        refused(client.post("/v1/predict", content=chunks(), headers={"content-type": "image/png"}), 413)


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded():
    with TestClient(echo_app(max_pixels=10_000)) as client:
        bomb = png_bytes(size=(2000, 2000))  # 12 KB of file, 4 million pixels declared
        reason = refused(client.post("/v1/predict", files={"file": ("bomb.png", bomb)}), 413)
        assert "2000×2000" in reason
        assert client.post("/v1/predict", files={"file": ("ok.png", png_bytes(size=(100, 100)))}).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_content_type_that_holds_no_image_is_415(content_type):
    with TestClient(echo_app()) as client:
        refused(client.post("/v1/predict", content=b"hello", headers={"content-type": content_type}), 415)


@pytest.mark.parametrize("body, what", [
    (b"", "empty file"), (noise_png()[:6000], "cannot decode"), (b"not an image at all", "not an image"),
    (png_bytes(fmt="ICO"), "not an image in an accepted format")], ids=["empty", "truncated", "text", "ico"])
def test_bytes_that_are_no_image_in_an_accepted_format_are_400(body, what):
    with TestClient(echo_app()) as client:
        assert what in refused(client.post("/v1/predict", content=body, headers={"content-type": "image/png"}), 400)
        assert what in refused(client.post("/v1/predict", files={"file": ("x.png", body)}), 400)


WRONG_JSON = {"cut": b"{", "not-a-list": b'{"images": "abc"}', "not-base64": b'{"images": ["%%%"]}',
              "a-list": b"[1, 2]", "no-images": b'{"x": 1}', "deep": b"[" * 100_000}


@pytest.mark.parametrize("body", WRONG_JSON.values(), ids=WRONG_JSON.keys())
def test_wrong_json_is_400(body):
    with TestClient(echo_app()) as client:
        refused(client.post("/v1/predict", content=body, headers={"content-type": "application/json"}), 400)


def test_json_with_base64_images_is_accepted():
    with TestClient(echo_app()) as client:
        data = {"images": [base64.b64encode(png_bytes(10)).decode(),
                           "data:image/png;base64," + base64.b64encode(png_bytes(20)).decode()]}
        rows = client.post("/v1/predict", json=data).json()["results"]
        assert [row["top"][0][1] for row in rows] == [10 / 255, 20 / 255]


def test_a_path_in_a_request_is_only_a_name_it_is_never_opened():
    with TestClient(echo_app()) as client:
        answer = client.post("/v1/predict", files={"file": ("/etc/hostname", png_bytes(7))})
        assert answer.json()["results"][0] == {"path": "/etc/hostname", "top": [["grey", 7 / 255]]}
        refused(client.post("/v1/predict", json={"images": ["/etc/hostname"]}), 400)  # not base64 of an image
        refused(client.post("/v1/predict", files={"file": ("x.png", b"/etc/hostname")}), 400)


def test_a_multipart_body_without_a_file_or_boundary_is_400():
    with TestClient(echo_app()) as client:
        refused(client.post("/v1/predict", data={"file": "text"}, files={}), 415)  # urlencoded: no file possible
        refused(client.post("/v1/predict", content=b"--x\r\n", headers={"content-type": "multipart/form-data"}), 400)
        form = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nhi\r\n--b--\r\n'
        reason = refused(client.post("/v1/predict", content=form,
                                     headers={"content-type": "multipart/form-data; boundary=b"}), 400)
        assert "no image" in reason


def test_too_many_images_in_one_request_is_413():
    with TestClient(echo_app(max_images=2)) as client:
        files = [("file", (f"{i}.png", png_bytes(i))) for i in range(3)]
        assert "3 images" in refused(client.post("/v1/predict", files=files), 413)


def test_a_request_past_its_timeout_is_504_and_the_server_still_answers():
    with TestClient(echo_app(EchoModel(delay=0.5), timeout_s=0.1)) as client:
        assert "timeout" in refused(client.post("/v1/predict", files={"file": ("a.png", png_bytes())}), 504)
        assert client.get("/health").json()["status"] == "ok"


def test_explain_of_a_model_that_cannot_explain_is_one_line():
    class Unexplained(EchoModel):
        def explain(self, image):
            from backbonekit.errors import ConfigError

            raise ConfigError("no explanations for this model")

    with TestClient(echo_app(Unexplained())) as client:
        assert "no explanations" in refused(client.post("/v1/explain", files={"file": ("a.png", png_bytes())}), 400)
        refused(client.post("/v1/explain?format=svg", files={"file": ("a.png", png_bytes())}), 400)


def test_an_unknown_route_or_method_is_answered_in_the_same_shape():
    with TestClient(echo_app()) as client:
        assert refused(client.get("/v1/nothing"), 404) == "Not Found"
        assert refused(client.get("/v1/predict"), 405) == "Method Not Allowed"
