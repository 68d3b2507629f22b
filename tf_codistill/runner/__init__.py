"""Running one group: the flags derived from the config, the teacher sources --teacher
names, strategies, optimizers, the training loop (``train_lib``: build, restore, fit,
export), callbacks, this group's own workers, and offline evaluation."""
