"""Read the results: the MLflow store as a tidy table, robust winners, their tags in MLflow, the export,
and every other number the report shows (the Pareto front, stress profiles, importances).

No Ray; no plotting (that is `dashboards/`, which draws what this package computes)."""
