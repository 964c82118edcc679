"""What the worker stores beside an image for browsers (a thumbnail, a preview) and where: the API only streams them."""

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


def thumbnail_key(job_id: str, index: int) -> str:
    """Storage key of an image's thumbnail: under the job's prefix, so deleting the job removes it.

    Uploads are stored as '<job id>/<index:06d><ext>', so these folders never meet an upload.
    """
    return f"{job_id}/thumbnails/{index}.jpg"


def preview_key(job_id: str, index: int) -> str:
    """Storage key of an image's preview (only images a browser cannot show have one)."""
    return f"{job_id}/previews/{index}.jpg"
