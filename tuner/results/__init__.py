"""Read the results: robust winners (their tags in MLflow written by `tuner.tracking.winner_tags`), the
export, and every other number the report shows (the Pareto front, stress profiles, importances), from the
tidy trials of `tuner.tracking.reader`.

No Ray; no plotting (that is `dashboards/`, which draws what this package computes)."""
