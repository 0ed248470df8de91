import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def test_a_process_that_imported_tensorflow_freezes_its_objects_after_every_other_exit_handler():
    result = _run(
        "import atexit, gc\n"
        "atexit.register(lambda: print('at exit, frozen:', gc.get_freeze_count() > 0))  # the first in, the last out\n"
        "from annotator.tf_runtime import import_tensorflow\n"
        "import_tensorflow()\n"
        "atexit.register(lambda: print('before, frozen:', gc.get_freeze_count() > 0))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["before, frozen: False", "at exit, frozen: True"]


def test_running_the_chain_on_xnnpack_prints_nothing():
    result = _run(
        "import numpy as np\n"
        "from annotator.models.architectures import build_model\n"
        "from annotator.models.graph import ChainGraph\n"
        "from annotator.models.specs import chain_order\n"
        "graph = ChainGraph([(spec, build_model(spec), False) for spec in chain_order()])\n"
        "graph(np.zeros((3, 120, 120, 3), np.uint8))\n"
        "print(graph.engine)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "xnnpack\n"
    assert "XNNPACK" not in result.stderr, result.stderr
