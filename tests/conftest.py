"""Every test session keeps sharptune's user-level index out of the real home folder.

`python -m tuner run` records where each experiment lives in `$SHARPTUNE_HOME/experiments.json`
(`tuner.experiment_index`); the tests' runs and their subprocesses (which inherit the environment) write a
throwaway one instead of `~/.sharptune`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from tuner.experiment_index import HOME_ENV

_home = tempfile.mkdtemp(prefix="sharptune-home-")
os.environ[HOME_ENV] = _home
atexit.register(shutil.rmtree, _home, True)
