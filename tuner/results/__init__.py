"""Read the results: the MLflow store as a tidy table, robust winners, their tags in MLflow, the export.

No Ray; no plotting (that is `dashboards/`, which reads this package)."""
