"""What the worker stores beside an image for browsers (a thumbnail, a preview) and where: the API only streams them."""

from collections.abc import Iterable

# Pillow's names of the formats every current browser shows in an <img>, with their media types.
# MPO is the multi-picture JPEG many cameras write; browsers show its first picture.
BROWSER_FORMATS = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}
BROWSER_MEDIA_TYPES = frozenset(BROWSER_FORMATS.values())
# Both renditions are JPEGs made from the decoded, EXIF-oriented RGB picture.
MEDIA_TYPE = "image/jpeg"


def needs_preview(image_format: str | None) -> bool:
    """True for a decoded image a browser could not show as submitted (TIFF, ICO, PPM, ...)."""
    return image_format not in BROWSER_FORMATS


def pack_key(job_id: str, start: int, name: str) -> str:
    """Storage key of one chunk's rendition pack: its images' thumbnails and previews end to end, in one object.

    One object per chunk, not two per image: creating a small file cost ~1 ms of kernel time on the
    machines measured here (a fifth of a fast decode), and an object store bills every PUT. `name`
    tells apart the packs of two deliveries of the chunk; each row names the pack it was written with.
    Under the job's prefix, so deleting the job removes it; uploads are '<job id>/<index:06d><ext>'.
    """
    return f"{job_id}/renditions/{start:09d}-{name}.bin"


def pack_renditions(key: str, images: Iterable[tuple[int, dict[str, bytes | None]]]) -> tuple[bytes, dict[int, dict]]:
    """The pack stored at `key` for (image id, {kind: JPEG bytes or None}) pairs, and each image's row
    reference into it: {"key": key, kind: [offset, length], ...} (rendition_span reads it back)."""
    parts: list[bytes] = []
    refs: dict[int, dict] = {}
    offset = 0
    for image_id, by_kind in images:
        ref: dict = {"key": key}
        for kind, data in by_kind.items():
            if data is not None:
                ref[kind] = [offset, len(data)]
                parts.append(data)
                offset += len(data)
        refs[image_id] = ref
    return b"".join(parts), refs


def rendition_span(ref: dict | None, kind: str) -> tuple[str, int, int] | None:
    """(pack key, offset, length) of an image's `kind` ("thumbnail" or "preview") from its row's
    `renditions` reference; None when the row has none of that kind."""
    if not ref or not ref.get(kind):
        return None
    offset, length = ref[kind]
    return ref["key"], int(offset), int(length)


def thumbnail_key(job_id: str, index: int) -> str:
    """Where an image processed before rendition packs keeps its thumbnail (one object per image)."""
    return f"{job_id}/thumbnails/{index}.jpg"


def preview_key(job_id: str, index: int) -> str:
    """Where an image processed before rendition packs keeps its preview (only formats browsers cannot show)."""
    return f"{job_id}/previews/{index}.jpg"
