"""The ``annotate`` command line: one module per command group, heavy imports (TensorFlow, SQLAlchemy,
Celery) only inside the commands that need them, so ``annotate --help`` is instant."""

from __future__ import annotations

import click

from annotator.cli.db import db
from annotator.cli.exports import export
from annotator.cli.inspection import example, report, show
from annotator.cli.jobs import jobs, reannotate, status, submit
from annotator.cli.labels import labels
from annotator.cli.models import models
from annotator.cli.teachers import teach
from annotator.cli.training import train
from annotator.cli.worker import worker
from annotator.stopping import stop_like_ctrl_c


@click.group()
@click.version_option(package_name="annotate")
@click.pass_context
def main(context: click.Context) -> None:
    """Annotate folders of face images with a chain of Keras models; export labelled training sets."""
    if context.invoked_subcommand != "worker":  # a worker keeps Celery's warm shutdown
        context.call_on_close(stop_like_ctrl_c())


for command in (submit, reannotate, status, jobs, export, labels, show, report, teach, models, train, example,
                db, worker):
    main.add_command(command)
