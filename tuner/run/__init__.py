"""Drive the search: the runner, its experiment folder, the Ray pieces, progress lines, the Optuna searcher.
MLflow is written through `tuner.tracking`. Imports Ray and MLflow; the CLI loads it only for `run` and `resume`."""
