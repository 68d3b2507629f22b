"""The paper's stateful LM on a generated language with a known entropy floor.

Same model and batching as ``--task=lm`` (the LSTM LM with state carried across
batches), but the tokens come from a hidden Markov source
(``data_pipelines.hidden_markov``): unlimited training data, so no arm of a long
experiment repeats any, and the best reachable held-out loss is known, so every
evaluation also reports how far above it the model is. Nothing is read from disk.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from data_pipelines import hidden_markov
from tf_codistill.config import AT_LEAST_0, AT_LEAST_1, ConfigError, Range, knob, with_defaults
from tf_codistill.core.losses import perplexity
from tf_codistill.models.lstm_lm import LanguageModelConfig, LSTMArchitecture, StatefulLanguageModel
from tf_codistill.tasks.base import Task, TokenRows

HELD_OUT_WINDOWS = 64  # held-out batches of --eval_steps=0 ("the whole set")
AT_LEAST_2 = Range(lambda v: v >= 2, "of at least 2")
HELD_OUT_SPLITS = tuple(hidden_markov.HELD_OUT_TAGS)


@dataclasses.dataclass(frozen=True)
class HiddenMarkovModelSection(with_defaults(LSTMArchitecture, embedding_dim=64, units=256,
                                             num_layers=1)):
    """The LM's architecture and the source it learns: both fixed for a model_dir's life."""

    vocab_size: int = knob(128, "Tokens the generated source emits.", valid=AT_LEAST_2)
    source_states: int = knob(64, "Hidden states of the generated source.", valid=AT_LEAST_2)
    source_successors: int = knob(4, "States each source state can move to.",
                                  valid=AT_LEAST_1)
    source_emissions: int = knob(12, "Tokens each source state can emit.", valid=AT_LEAST_1)
    source_seed: int = knob(0, "Seed of the source's matrices: the language itself, the same "
                            "for every --seed and group.", valid=AT_LEAST_0)


@dataclasses.dataclass(frozen=True)
class HiddenMarkovData(TokenRows):
    """Rows of generated tokens, and which held-out streams evaluation scores."""

    held_out: str = knob(
        "test", "Held-out streams evaluations score: test (the figures to report) or "
        "validation (a second set, kept apart for choosing hyperparameters).",
        choices=HELD_OUT_SPLITS)


class HiddenMarkovTask(Task):
    """B continuous streams x seq_len tokens per replica from a hidden Markov source."""

    ModelConfig = HiddenMarkovModelSection
    DataConfig = HiddenMarkovData
    output_kind = "softmax"
    throughput_unit = "tokens"

    def __init__(self, config):
        super().__init__(config)
        model = config.model
        spec = hidden_markov.SourceSpec(
            num_states=model.source_states, vocab_size=model.vocab_size,
            successors=model.source_successors, emissions=model.source_emissions,
            seed=model.source_seed)
        try:
            self.source = hidden_markov.HiddenMarkovSource(spec)
        except ValueError:
            raise ConfigError(
                f"--source_successors={spec.successors} and --source_emissions="
                f"{spec.emissions} must be at most --source_states={spec.num_states} and "
                f"--vocab_size={spec.vocab_size}; lower them or raise those.") from None

    @property
    def units_per_row(self):
        return self.config.data.seq_len

    def build_model(self, per_replica_batch):
        model = self.config.model
        return StatefulLanguageModel(LanguageModelConfig.of(model, model.vocab_size),
                                     per_replica_batch, seed=self.config.init_seed)

    def train_dataset(self, context):
        """Each local replica its own streams, seeded by (seed, group, pipeline, replica);
        with --partition=same every group reads the same streams."""
        config = self.config
        group = 0 if config.codistill.partition == "same" else config.group + 1
        rngs = [hidden_markov.stream_rng(config.trainer.seed, group, context.input_pipeline_id,
                                         replica)
                for replica in range(_local_replicas(context))]
        return hidden_markov.lm_batches(self.source, rngs, self._rows(context),
                                        config.data.seq_len).prefetch(2)

    def eval_dataset(self, context):
        """The held-out streams, the same for every seed and group; each replica its rows."""
        rows, local = self._rows(context), _local_replicas(context)
        first = context.input_pipeline_id * local
        row_sets = [slice((first + r) * rows, (first + r + 1) * rows) for r in range(local)]
        return hidden_markov.batches_of_streams(self._held_out, row_sets,
                                                self.config.data.seq_len)

    def summarize_eval(self, logs):
        """Adds perplexity, the source's entropy floor on the same tokens, and the excess."""
        summary = dict(logs)
        summary["perplexity"] = perplexity(logs["loss"])
        summary["entropy_floor"] = self.floor
        summary["excess_loss"] = logs["loss"] - summary["entropy_floor"]
        return summary

    @functools.cached_property
    def floor(self) -> float:
        """The best mean loss any model can score on the held-out streams."""
        return self.source.entropy_floor(self._held_out)

    def label_prior(self, kind):
        if kind == "uniform":
            return np.ones(self.config.model.vocab_size)
        return self.source.start @ self.source.emission  # the source's exact unigram

    def _rows(self, context):
        return context.get_per_replica_batch_size(self.config.trainer.batch_size)

    @functools.cached_property
    def _held_out(self) -> np.ndarray:
        windows = self.config.trainer.eval_steps or HELD_OUT_WINDOWS
        return hidden_markov.held_out_streams(self.source, self.config.trainer.batch_size,
                                              self.config.data.seq_len, windows,
                                              self.config.data.held_out)


def _local_replicas(context) -> int:
    return context.num_replicas_in_sync // context.num_input_pipelines
