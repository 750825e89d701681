"""sharptune's tuner: YAML spec -> Optuna space -> Ray Tune run -> MLflow tracking."""
