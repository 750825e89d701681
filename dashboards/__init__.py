"""The comparison dashboard: which method wins, how robustly, at what cost. Presentation only.

    from dashboards.report import build_report     # HTML + PNGs, logged to the parent run

It reads `tuner.results` (the store, the robust winners, the per-method table); nothing in `tuner`
outside the CLI imports it. Recording the winners in MLflow is `tuner.results.winners.tag_winners`.
"""
