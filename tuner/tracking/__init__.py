"""The one MLflow adapter: every module that reads or writes MLflow, and the only one that imports it.

The seam: the runner (`tuner.run`), the results (`tuner.results`), the commands and the dashboards hand
plain values (a Ray trial, a table's numbers, a folder) to the functions here and get plain values or an
`ExperimentStore` back; no module outside this package imports `mlflow` (tests/architecture/test_imports.py).
One job per module:

    tags           the MLflow names: tag names, the experiment name, filters, batch size, clock
    store_check    reach and write the store before anything starts
    writer         the driver's Ray callback: parent run, one run per trial, restore-safe
    outage         a tracking server that goes away mid-run: buffer, retry, say so
    backfill       complete MLflow from Ray's records at the end of a phase
    reader         `ExperimentStore`: the runs read back as a tidy table
    winner_tags    the winners written back: best-run tags, parent metrics, summary.csv, the report
    parent_page    the parent run's page: the comparison as its description, metrics rounded
    ui, app, server  `tuner ui`: the saved runs view, the classic-mode landing page, the server launcher

This file imports nothing, so `import tuner.tracking.tags` costs no MLflow import (`list`, `validate`).
"""
