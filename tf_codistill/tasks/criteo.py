"""The paper's Criteo click-through set-up: hashed categoricals, a ReLU DNN, logistic output.

The input pipeline hashes the categorical strings, so the trained model (and its
teacher copies) see numbers only and compile with --jit_compile; the export
takes the raw strings again (``serving_model``).
"""

from __future__ import annotations

import dataclasses

from data_pipelines.criteo import CriteoStats, criteo_dataset
from tf_codistill.config import AT_LEAST_1, ConfigError, knob
from tf_codistill.models.criteo_dnn import (PAPER_HIDDEN_UNITS, build_criteo_dnn,
                                            criteo_metrics, serving_model)
from tf_codistill.tasks.base import InputFiles, Task, expand_files, group_input_context


@dataclasses.dataclass(frozen=True)
class CriteoModelSection:
    """The click-through DNN's architecture."""

    hidden_units: tuple[int, ...] = knob(PAPER_HIDDEN_UNITS, "Widths of the DNN's hidden "
                                         "layers.")
    hash_buckets: int = knob(100_000, "Hash buckets per categorical feature.",
                             valid=AT_LEAST_1)
    embedding_dim: int = knob(256, "Embedding size of each categorical feature.",
                              valid=AT_LEAST_1)


class CriteoTask(Task):
    """Groups read disjoint shards of the TSV lines; evaluation reads --eval_files."""

    ModelConfig = CriteoModelSection
    DataConfig = InputFiles
    output_kind = "sigmoid"

    def __init__(self, config):
        super().__init__(config)
        self.stats = CriteoStats()

    def check_inputs(self):
        data = self.config.data
        if not data.train_files or not data.eval_files:
            raise ConfigError("--task=criteo needs --train_files and --eval_files: tab-separated "
                              "Criteo Display Ad Challenge files (label, 13 integer and 26 "
                              "categorical features), e.g. train.txt split by line.")
        expand_files(data.train_files, "train_files")
        expand_files(data.eval_files, "eval_files")

    def build_model(self, per_replica_batch):
        model = self.config.model
        return build_criteo_dnn(model.hidden_units,
                                hash_buckets=model.hash_buckets,
                                embedding_dim=model.embedding_dim,
                                seed=self.config.init_seed)

    def serving_model(self, student):
        return serving_model(student)

    def train_dataset(self, context):
        return criteo_dataset(list(self.config.data.train_files), self.config.trainer.batch_size,
                              hash_buckets=self.config.model.hash_buckets,
                              stats=self.stats, shuffle=True,
                              seed=self.config.data_seed,
                              num_epochs=None, drop_remainder=True,
                              input_context=group_input_context(self.config, context))

    def eval_dataset(self, context):
        return criteo_dataset(list(self.config.data.eval_files), self.config.trainer.batch_size,
                              hash_buckets=self.config.model.hash_buckets, stats=self.stats,
                              drop_remainder=True, input_context=context)

    def metrics(self):
        return criteo_metrics()

    def summarize_eval(self, logs):
        summary = dict(logs)
        summary["skipped_lines"] = self.stats.as_dict()
        return summary
