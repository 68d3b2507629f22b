"""The paper's Common Crawl language model task: WET files -> stateful LM batches -> LSTM LM."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

import tokenizer as tokenizer_lib
from data_pipelines.filters import FilterConfig
from data_pipelines import partition, shards, wet
from data_pipelines.partition import DEFAULT_VALIDATION_FRACTION
from data_pipelines.training_data import build_dataset_from_shards, build_training_dataset
from tf_codistill.config import AT_LEAST_0, ConfigError, Range, knob
from tf_codistill.core.losses import perplexity
from tf_codistill.models.lstm_lm import LanguageModelConfig, LSTMArchitecture, StatefulLanguageModel
from tf_codistill.tasks.base import InputFiles, Task, TokenRows, expand_files

UNIGRAM_BATCHES = 200
VOCAB_HINT = ("build one with `python -m tokenizer.train --input=<WET or text files> "
              "--vocab_size=24006 --output=vocab.model`")


@dataclasses.dataclass(frozen=True)
class LanguageModelData(InputFiles, TokenRows):
    """Where the LM's text comes from and how it is cut into rows."""

    train_shards: str = knob(
        "", "LM: the --output_prefix of data_pipelines.beam_pipeline; train on its TFRecord "
        "shards of this group's partition (and evaluate on its validation shards) instead "
        "of reading --train_files.")
    vocab: str = knob("", "Word-piece vocabulary (tokenizer model file).")
    min_paragraph_words: int = knob(
        0, "Long-paragraph filter: paragraphs shorter than this are dropped; 0: the data "
        "pipeline's default (30).", valid=AT_LEAST_0)
    shuffle_documents: int = knob(
        1000, "Documents in the LM's shuffle buffer: each epoch reads the training documents "
        "in an order drawn with the group's data seed (--seed and --group) and the epoch; "
        "0 or 1: file order (files still shuffled).", valid=AT_LEAST_0)
    validation_fraction: float = knob(
        DEFAULT_VALIDATION_FRACTION, "Share of --train_files documents held out for "
        "evaluation (by hash of the record id) when --eval_files is empty.",
        valid=Range(lambda v: 0 < v < 1, "between 0 and 1"))


@dataclasses.dataclass(frozen=True)
class LanguageModelSection(LSTMArchitecture):
    """The LM's architecture: what a model_dir keeps for its whole life."""

    vocab_size: int = knob(0, "LM vocabulary size; 0: from --vocab.", valid=AT_LEAST_0)


class LanguageModelTask(Task):
    """B streams x seq_len tokens per replica; state carried across batches, never reset."""

    ModelConfig = LanguageModelSection
    DataConfig = LanguageModelData
    output_kind = "softmax"
    throughput_unit = "tokens"

    def __init__(self, config):
        super().__init__(config)
        self._tokenizer = None
        self._train_files = []
        self._eval_files = []
        self._shards = {}
        self._read_stats = wet.ReadStats()

    @property
    def units_per_row(self):
        return self.config.data.seq_len

    def check_inputs(self):
        data = self.config.data
        if bool(data.train_files) == bool(data.train_shards):
            raise ConfigError("--task=lm needs Common Crawl WET files: pass --train_files="
                              "<files or globs>, or instead the TFRecord shards of "
                              "data_pipelines.beam_pipeline as --train_shards=<its "
                              "--output_prefix> (one of the two), and --vocab=<vocabulary>; "
                              + VOCAB_HINT + ".")
        if not data.vocab:
            raise ConfigError("--task=lm needs --vocab=<vocabulary file>; " + VOCAB_HINT + ".")
        self._train_files = expand_files(data.train_files, "train_files")
        self._eval_files = expand_files(data.eval_files, "eval_files")
        if data.train_shards:
            self._shards = {name: self._shard_files(name)
                            for name in (self._partition().name, "validation")}
        try:
            self._tokenizer = tokenizer_lib.load(data.vocab)
        except tokenizer_lib.VocabularyError as error:
            raise ConfigError(f"--vocab={data.vocab}: {error}. {VOCAB_HINT[0].upper()}"
                              f"{VOCAB_HINT[1:]}.") from None
        wanted = self.config.model.vocab_size
        if wanted and wanted != self._tokenizer.vocab_size:
            raise ConfigError(f"--vocab_size={wanted} but {data.vocab} holds "
                              f"{self._tokenizer.vocab_size} pieces; drop --vocab_size or "
                              "pass the matching vocabulary.")

    def model_config(self) -> LanguageModelConfig:
        model = self.config.model
        return LanguageModelConfig.of(model, model.vocab_size or self._tokenizer.vocab_size)

    def build_model(self, per_replica_batch):
        return StatefulLanguageModel(self.model_config(), per_replica_batch,
                                     seed=self.config.init_seed)

    def train_dataset(self, context):
        if self._shards:
            return self._shard_dataset(self._shards[self._partition().name], context)
        return self._dataset(self._train_files, context, self.config.codistill.partition,
                             self.config.group, self.config.num_groups,
                             seed=self.config.data_seed)

    def eval_dataset(self, context):
        # eval_steps=0 means one pass over the held-out documents; otherwise they repeat
        # until eval_steps batches are drawn. Unshuffled: every seed and group is scored on
        # the same held-out stream.
        epochs = None if self.config.trainer.eval_steps else 1
        if self._shards and not self._eval_files:
            return self._shard_dataset(self._shards["validation"], context, epochs)
        if self._eval_files:
            return self._dataset(self._eval_files, context, "same", 0, 1, epochs)
        return self._dataset(self._train_files, context, "validation", self.config.group,
                             self.config.num_groups, epochs)

    def label_prior(self, kind):
        """Uniform, or unigram counts of this group's training targets.

        The unigram prior counts the first UNIGRAM_BATCHES batches of the
        group's own stream, a sample that is cheap and sees no held-out text.
        """
        vocab_size = self.model_config().vocab_size
        if kind == "uniform":
            return np.ones(vocab_size)
        counts = np.zeros(vocab_size)
        dataset = self.train_dataset(tf.distribute.InputContext())
        for _, targets in dataset.take(UNIGRAM_BATCHES):
            counts += np.bincount(targets.numpy().ravel(), minlength=vocab_size)
        return counts

    def input_stats(self):
        return self._read_stats.as_dict()

    def summarize_eval(self, logs):
        summary = dict(logs)
        summary["perplexity"] = perplexity(logs["loss"])
        return summary

    def _dataset(self, files, context, partition_mode, group, num_groups, num_epochs=None,
                 seed=None):
        filters = FilterConfig()
        if self.config.data.min_paragraph_words:
            filters = dataclasses.replace(
                filters, min_paragraph_words=self.config.data.min_paragraph_words)
        return build_training_dataset(
            files, self._tokenizer,
            per_replica_batch_size=context.get_per_replica_batch_size(
                self.config.trainer.batch_size),
            sequence_length=self.config.data.seq_len, group=group, num_groups=num_groups,
            partition_mode=partition_mode, input_context=context, filter_config=filters,
            validation_fraction=self.config.data.validation_fraction,
            num_epochs=num_epochs, seed=seed,
            shuffle_buffer=self.config.data.shuffle_documents,
            stats=self._read_stats if partition_mode != "validation" else None)

    def _partition(self) -> partition.Partition:
        """This group's training partition (its name names its Beam shards)."""
        config = self.config
        return partition.Partition(config.group, config.num_groups, config.codistill.partition,
                                   config.data.validation_fraction)

    def _shard_files(self, name: str) -> list[str]:
        try:
            return shards.shard_files(self.config.data.train_shards, name)
        except FileNotFoundError as error:
            raise ConfigError(f"--train_shards={self.config.data.train_shards}: {error} "
                              f"(--num_groups={self.config.num_groups} and --partition="
                              f"{self.config.codistill.partition} must match the pipeline's)."
                              ) from None

    def _shard_dataset(self, files, context, num_epochs=None):
        return build_dataset_from_shards(
            files, self._tokenizer.eod_id,
            per_replica_batch_size=context.get_per_replica_batch_size(
                self.config.trainer.batch_size),
            sequence_length=self.config.data.seq_len, input_context=context,
            num_epochs=num_epochs, seed=self.config.data_seed)
