"""Request bodies → images, in memory (nothing a request sends names or reaches a file): a multipart form
(``curl -F file=@cat.jpg``, the page), a raw image body (``--data-binary @cat.jpg -H 'Content-Type: image/jpeg'``)
or JSON ``{"images": ["<base64>", …]}``. Each image's format is checked and its pixel count read from its header
before a pixel is decoded (a small file can declare a gigapixel image)."""
from __future__ import annotations

import base64
import binascii
import io
import json

from PIL import Image, UnidentifiedImageError

from backbonekit.io.images import DECODE_ERRORS
from backbonekit.serve.errors import RequestError

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")  # the decoders PIL may use on a request's bytes
RAW_TYPES = ("application/octet-stream",)


def uploaded_files(content_type: str, body: bytes, max_images: int) -> list[tuple[str, bytes]]:
    """(name the client gave, bytes) of each image in the body; 415 for a content type that holds none."""
    from python_multipart.multipart import parse_options_header

    media, params = parse_options_header(content_type or "")
    media = media.decode("latin-1").lower()
    if media == "multipart/form-data":
        files = multipart_files(body, params.get(b"boundary", b""))
    elif media == "application/json":
        files = json_files(body)
    elif media.startswith("image/") or media in RAW_TYPES:
        files = [("image", body)]
    else:
        raise RequestError(415, f"content type {media or 'missing'}: send multipart/form-data (a file field), "
                                "an image/* body or application/json")
    if not files:
        raise RequestError(400, "no image in the request (a multipart file field, e.g. curl -F file=@cat.jpg)")
    if len(files) > max_images:
        raise RequestError(413, f"{len(files)} images in one request; at most {max_images}")
    return files


def multipart_files(body: bytes, boundary: bytes) -> list[tuple[str, bytes]]:
    """Every part of the form that is a file (has a filename), read into memory."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    if not boundary:
        raise RequestError(400, "multipart/form-data without a boundary")
    parts: list[dict] = []
    header = {"field": b"", "value": b""}

    def on_header_end():
        parts[-1]["headers"][header["field"].lower()] = header["value"]
        header["field"], header["value"] = b"", b""

    callbacks = {
        "on_part_begin": lambda: parts.append({"headers": {}, "data": bytearray()}),
        "on_part_data": lambda data, start, end: parts[-1]["data"].extend(data[start:end]),
        "on_header_field": lambda data, start, end: header.__setitem__("field", header["field"] + data[start:end]),
        "on_header_value": lambda data, start, end: header.__setitem__("value", header["value"] + data[start:end]),
        "on_header_end": on_header_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, ValueError, IndexError) as e:
        raise RequestError(400, f"malformed multipart body ({e})") from None
    files = []
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        if b"filename" in disposition:
            files.append((disposition[b"filename"].decode("utf-8", "replace")[:200], bytes(part["data"])))
    return files


def json_files(body: bytes) -> list[tuple[str, bytes]]:
    """``{"images": [...]}`` or ``{"image": ...}``: base64 strings, or data URLs (``data:image/png;base64,…``)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(400, f"the body is not JSON ({e})") from None
    except RecursionError:  # [[[[…: nested deeper than the parser goes
        raise RequestError(400, "the JSON body is nested too deeply") from None
    items = data.get("images", [data["image"]] if "image" in data else None) if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise RequestError(400, 'JSON body: expected {"images": ["<base64 image>", ...]}')
    files = []
    for n, item in enumerate(items):
        try:
            files.append((f"image{n}", base64.b64decode(item.split(",", 1)[-1], validate=True)))
        except (binascii.Error, ValueError):
            raise RequestError(400, f"JSON body: images[{n}] is not base64") from None
    return files


def decode_upload(name: str, data: bytes, max_pixels: int) -> Image.Image:
    """The RGB image in ``data``; 413 past ``max_pixels`` (checked on the header, before decoding), 400 when the
    bytes are no image in an allowed format or are cut short."""
    if not data:
        raise RequestError(400, f"{name}: empty file")
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise RequestError(413, f"{name}: {width}×{height} pixels; at most {max_pixels:,} an image")
            image.load()
            return image.convert("RGB")
    except UnidentifiedImageError:
        raise RequestError(400, f"{name}: not an image in an accepted format ({', '.join(FORMATS)})") from None
    except Image.DecompressionBombError as e:
        raise RequestError(413, f"{name}: {e}") from None
    except DECODE_ERRORS as e:
        raise RequestError(400, f"{name}: cannot decode the image ({e or type(e).__name__})") from None
