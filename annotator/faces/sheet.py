"""A picture to check faces at a glance: the photo with boxes and landmarks, each aligned face with its crops.

Pillow only. The photo is drawn on the left with every face's box, five landmarks and index; on the right one
row per face shows the aligned 120x120 face (doubled) with the eyes and mouth crop rectangles and the
template's landmark positions, and the values the models gave it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from annotator.faces.alignment import TEMPLATE
from annotator.faces.detection import Detection
from annotator.models.specs import FACE_SIZE, get_spec

PHOTO_SIDE = 640
FACE_ZOOM = 2
TEXT_WIDTH = 400
MARGIN = 12
BOX_COLOUR = (255, 214, 0)
LANDMARK_COLOUR = (255, 40, 40)
TEMPLATE_COLOUR = (255, 255, 255)
CROP_COLOURS = {"eyes": (40, 220, 90), "mouth": (40, 180, 255)}


@dataclass(frozen=True)
class SheetFace:
    """One face to draw: where it is in the photo (None for an aligned portrait), its pixels and its values."""

    index: int
    detection: Detection | None
    pixels: np.ndarray  # (120, 120, 3) uint8 RGB, as extraction gives it
    lines: list[str] = field(default_factory=list)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _draw_photo(photo: Image.Image, faces: Sequence[SheetFace]) -> Image.Image:
    scale = min(1.0, PHOTO_SIDE / max(photo.size))
    shown = photo.convert("RGB").resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))))
    draw = ImageDraw.Draw(shown)
    for face in faces:
        if face.detection is None:
            continue
        left, top, right, bottom = (v * scale for v in face.detection.box)
        draw.rectangle((left, top, right, bottom), outline=BOX_COLOUR, width=2)
        draw.text((left + 3, top + 2), f"{face.index}  {face.detection.score:.3f}", fill=BOX_COLOUR, font=_font(14))
        for x, y in face.detection.landmarks * scale:
            draw.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), fill=LANDMARK_COLOUR)
    return shown


def _draw_aligned(face: SheetFace) -> Image.Image:
    side = FACE_SIZE * FACE_ZOOM
    tile = Image.fromarray(face.pixels).resize((side, side), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(tile)
    for name, colour in CROP_COLOURS.items():
        crop = get_spec(name).crop
        draw.rectangle((crop.left * FACE_ZOOM, crop.top * FACE_ZOOM, crop.right * FACE_ZOOM - 1,
                        crop.bottom * FACE_ZOOM - 1), outline=colour, width=2)
        draw.text((crop.left * FACE_ZOOM + 3, crop.top * FACE_ZOOM + 1), name, fill=colour, font=_font(12))
    for x, y in TEMPLATE * FACE_ZOOM:  # where alignment puts the landmarks
        draw.line((x - 4, y, x + 4, y), fill=TEMPLATE_COLOUR)
        draw.line((x, y - 4, x, y + 4), fill=TEMPLATE_COLOUR)
    return tile


def render_sheet(photo: Image.Image, faces: Sequence[SheetFace], title: str) -> Image.Image:
    """The whole picture: title, photo with boxes, one row per face (or a note that none was found)."""
    shown = _draw_photo(photo, faces)
    row_height = FACE_SIZE * FACE_ZOOM + MARGIN
    right_width = FACE_SIZE * FACE_ZOOM + MARGIN + TEXT_WIDTH
    header = 28
    height = header + max(shown.height, row_height * max(1, len(faces))) + MARGIN
    sheet = Image.new("RGB", (MARGIN * 3 + shown.width + right_width, height), (30, 30, 30))
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, 6), title, fill=(235, 235, 235), font=_font(16))
    sheet.paste(shown, (MARGIN, header))
    left = MARGIN * 2 + shown.width
    if not faces:
        draw.text((left, header), "no face found", fill=(255, 120, 120), font=_font(16))
    for row, face in enumerate(faces):
        top = header + row * row_height
        sheet.paste(_draw_aligned(face), (left, top))
        text_left = left + FACE_SIZE * FACE_ZOOM + MARGIN
        draw.text((text_left, top), f"face {face.index}", fill=BOX_COLOUR, font=_font(16))
        for number, line in enumerate(face.lines):
            draw.text((text_left, top + 24 + number * 18), line, fill=(235, 235, 235), font=_font(14))
    return sheet
