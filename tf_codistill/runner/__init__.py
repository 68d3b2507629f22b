"""Running a group: the resolved config, the model_dir layout, strategies, the
training loop (train_lib), callbacks, offline evaluation and local launching."""
