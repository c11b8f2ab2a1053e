"""The runtime package loads the paper loop only when a caller asks for it."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_runtime_leaves_the_paper_loop_unloaded() -> None:
    code = (
        "import sys, engine.runtime, engine.headless.runner\n"
        "assert 'engine.runtime._paper' not in sys.modules, 'paper loaded eagerly'\n"
        "assert 'engine.runtime._paper_study' not in sys.modules, 'paper study loaded eagerly'\n"
        "from engine.runtime import PaperHost, StudyPaper, paper_factory_for, study_paper\n"
        "from engine.runtime._paper import PaperHost as P\n"
        "assert PaperHost is P\n"
        "import engine.runtime as r\n"
        "assert callable(r.study_paper) and callable(r.paper_factory_for) and StudyPaper\n"
        "try:\n"
        "    r.no_such_name\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('missing name did not raise')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
