"""The Label Studio format: the labelling config, results from values and back, and reading exported tasks.

Every model of the registry is one ``Choices`` control named after it: gender as ``male`` / ``female``, each
regressor as ``0`` / ``0.5`` / ``1`` (the values the seed labels used), with the spec's meaning as hints.
A ``Number`` result (from a config of your own) is read as well.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse
from xml.sax.saxutils import quoteattr

from annotator.errors import LabelFileError
from annotator.images.sources import is_uri
from annotator.labels.records import GENDER_WORDS, KEY_FIELDS, LabelRecord
from annotator.models.specs import OutputKind, chain_order

IMAGE = "image"
"""Name of the ``Image`` object every control labels (``toName``)."""
LOCAL_FILES_URL = "/data/local-files/?d="
STORAGE_SCHEMES = ("s3://", "gs://", "gcs://", "azure-blob://")
"""Image URIs Label Studio resolves through a cloud storage of the project (tasks keep them as they are)."""
REGRESSOR_CHOICES = (0.0, 0.5, 1.0)


def _hints(meaning: str) -> dict[float, str]:
    """{1.0: "fully open", ...} from a spec's meaning "1.0 fully open, 0.5 partly open, 0.0 closed"."""
    return {float(value): text.strip() for value, text in re.findall(r"(\d\.\d+) ([^,]+)", meaning)}


def choice_text(value: float) -> str:
    """How a regressor value is written as a choice: 0, 0.5 or 1."""
    return f"{value:g}"


def label_config() -> str:
    """The labelling config XML to paste into a Label Studio project."""
    lines = ["<View>", '  <Header value="$caption"/>', f'  <Image name="{IMAGE}" value="$image" zoom="true"/>']
    for spec in chain_order():
        heading = spec.name if spec.output is OutputKind.GENDER_SOFTMAX else f"{spec.name}: {spec.meaning}"
        lines.append(f'  <Header value={quoteattr(heading)} size="5"/>')
        lines.append(f'  <Choices name="{spec.name}" toName="{IMAGE}" choice="single-radio" showInline="true">')
        if spec.output is OutputKind.GENDER_SOFTMAX:
            lines += [f'    <Choice value="{word}"/>' for word in GENDER_WORDS]
        else:
            hints = _hints(spec.meaning)
            lines += [f'    <Choice value="{choice_text(v)}" hint={quoteattr(hints.get(v, ""))}/>'
                      for v in REGRESSOR_CHOICES]
        lines.append("  </Choices>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def prediction_result(attribute: str, value: float) -> dict[str, Any]:
    """A pre-annotation result: gender by its female probability, a regressor at its nearest choice."""
    if attribute == "gender":
        choice = "female" if value >= 0.5 else "male"
    else:
        choice = choice_text(min(REGRESSOR_CHOICES, key=lambda c: abs(c - value)))
    return {"from_name": attribute, "to_name": IMAGE, "type": "choices", "value": {"choices": [choice]}}


def image_url(path: str, prefixes: list[tuple[str, str]]) -> str:
    """Label Studio's local-files URL of ``path``, its root rewritten by the first matching (old, new) prefix.

    An image in an object store keeps its URI (``s3://bucket/key``, ``gs://bucket/key``), which Label Studio
    resolves through the project's S3 or GCS storage; a prefix may rewrite it too (another bucket, or a path).
    """
    for old, new in sorted(prefixes, key=lambda pair: len(pair[0]), reverse=True):
        old = old.rstrip("/")
        if path == old or path.startswith(old + "/"):
            path = new.rstrip("/") + path[len(old):]
            break
    if is_uri(path):
        return path
    return LOCAL_FILES_URL + quote(path, safe="/")


def parse_path_prefix(text: str) -> tuple[str, str]:
    """``OLD=NEW`` as (OLD, NEW)."""
    old, equals, new = text.partition("=")
    if not equals or not old:
        raise ValueError(f"A path prefix is OLD=NEW, e.g. /srv/photos=photos. Received: {text!r}.")
    return old, new


def path_from_url(url: str) -> str | None:
    """The path in a local-files URL (as written, before any prefix rewrite), an object store URI itself, or
    None for another URL."""
    if url.startswith(STORAGE_SCHEMES):
        return url
    parsed = urlparse(url)
    if not parsed.path.endswith("/data/local-files/"):
        return None
    found = parse_qs(parsed.query).get("d")
    return found[0] if found else None


def _result_value(result: dict[str, Any]) -> object:
    value = result.get("value") or {}
    if result.get("type") == "choices" and value.get("choices"):
        return value["choices"][0]
    if result.get("type") == "number" and "number" in value:
        return value["number"]
    raise ValueError(f"unsupported result for {result.get('from_name')!r}: type {result.get('type')!r} "
                     "(choices or number expected)")


def _latest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    kept = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        return None
    # Several annotators may have labelled a task: the newest annotation is the one that stands.
    return max(enumerate(kept), key=lambda pair: (str(pair[1].get("updated_at") or pair[1].get("created_at") or ""),
                                                  pair[0]))[1]


def _record(number: int, task: object) -> LabelRecord | None:
    where = f"task {number}"
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        return LabelRecord(where, problem="not a Label Studio task (an object with a 'data' object)")
    if "id" in task:
        where += f" (id {task['id']})"
    data = task["data"]
    keys = {name: str(data[name]) for name in KEY_FIELDS if data.get(name) not in (None, "")}
    if "sha256" not in keys and "path" not in keys and isinstance(data.get(IMAGE), str):
        path = path_from_url(data[IMAGE])
        if path is not None:
            keys["path"] = path
    annotation = _latest_annotation(task)
    if annotation is None:
        return None  # not labelled yet: nothing to import, nothing wrong
    values: dict[str, object] = {}
    for result in annotation.get("result") or []:
        if not isinstance(result, dict):
            continue
        try:
            values[str(result.get("from_name"))] = _result_value(result)
        except ValueError as error:
            return LabelRecord(where, keys, problem=str(error))
    return LabelRecord(where, keys, values)


def read_tasks(path: Path) -> Iterator[LabelRecord]:
    """The labelled tasks of a Label Studio JSON export (tasks without annotations are left out)."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LabelFileError(f"Cannot read {path} as Label Studio JSON: {error}.") from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise LabelFileError(f"{path} is not a Label Studio export: expected a list of tasks.")
    for number, task in enumerate(tasks, start=1):
        record = _record(number, task)
        if record is not None:
            yield record
