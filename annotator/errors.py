"""One rooted hierarchy of the errors a user can act on; the CLI turns them into one-line messages."""


class AnnotateError(Exception):
    """Base of every expected, user-facing failure."""


class SourceError(AnnotateError):
    """The submitted folder is missing, not a folder, or holds no images."""


class NoActiveModelError(AnnotateError):
    """A model of the chain has no active version in the store."""


class ModelStoreError(AnnotateError):
    """A stored model file is missing, changed since it was registered, or cannot be loaded."""


class BrokerUnreachableError(AnnotateError):
    """The broker of ANNOTATE_BROKER_URL does not answer."""


class UnknownJobError(AnnotateError):
    """A job id that is not in the database."""


class UnknownVersionError(AnnotateError):
    """A model version that is not in the store."""


class UnknownImageError(AnnotateError):
    """An image path or sha256 that names no readable image."""


class ModelImportError(AnnotateError):
    """A model file that cannot be imported: unknown format, unreadable, or shapes that do not fit its spec."""


class UnsafeModelError(ModelImportError):
    """A model file that would run arbitrary Python code when loaded (a Lambda layer)."""


class LabelledSetError(AnnotateError):
    """A labelled CSV that is missing, malformed, or lists no usable images."""


class ExportError(AnnotateError):
    """An export that cannot be written as asked: bad options, no rows left, or an output in the way."""


class MissingExtraError(AnnotateError):
    """An optional dependency is not installed; the message names the pip command that installs it."""


class LabelFileError(AnnotateError):
    """A labels file that cannot be read (missing, not CSV or Label Studio JSON, no key column) or written."""


class LabelRowError(AnnotateError):
    """One row (or task) of a labels file that cannot be imported; it is reported with its line and skipped."""


class TrainingDataError(AnnotateError):
    """A training data set that is missing, malformed, too small or has a single class."""


class BackboneWeightsError(AnnotateError):
    """A pretrained backbone's weights file that is missing or does not fit the backbone."""
