"""A generated language with a known entropy floor: token streams from a hidden Markov model.

Real text runs out: on this machine's corpus, a run long enough for synchronous SGD to
flatten repeats data, and repeats it more for arms that read more per step. A hidden
Markov source gives unlimited data, and the best loss any model can reach on a held-out
stream is computable exactly: the forward algorithm's predictive cross-entropy, what a
model that knows the source and has read the stream from its start would score
(``entropy_floor``). A stream's next token depends on a hidden state that only the
tokens seen so far reveal, so an LSTM must learn to infer it from context, and its loss
keeps improving long after it has learned the unigram and bigram statistics.

Streams never end (no end-of-document token): row i of every batch continues row i of the
previous batch, as the stateful LM batches of ``lm_batching`` do.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

# Seed the two held-out stream sets apart from every training stream and from each other:
# "test" scores what is reported, "validation" is kept apart for choosing hyperparameters.
HELD_OUT_TAGS = {"test": 7_777_777, "validation": 7_777_778}


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """The source's shape; ``seed`` fixes its matrices (the language, not the sample)."""

    num_states: int = 64
    vocab_size: int = 128
    successors: int = 4          # next states each state can move to
    emissions: int = 12          # tokens each state can emit (supports overlap)
    seed: int = 0


class HiddenMarkovSource:
    """Sparse random transition and emission matrices, ergodic by a small floor on moves.

    Each state moves to ``successors`` states and emits one of ``emissions`` tokens, with
    Dirichlet(1) weights; every move also has a 1e-3 share spread over all states so the
    chain is ergodic and the stationary start is unique.
    """

    def __init__(self, spec: SourceSpec):
        if spec.successors > spec.num_states or spec.emissions > spec.vocab_size:
            raise ValueError(f"{spec}: successors must be at most num_states and emissions "
                             "at most vocab_size")
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        self.transitions = _sparse_rows(rng, spec.num_states, spec.num_states, spec.successors)
        self.transitions = 0.999 * self.transitions + 0.001 / spec.num_states
        self.emission = _sparse_rows(rng, spec.num_states, spec.vocab_size, spec.emissions)
        self.start = _stationary(self.transitions)

    def windows(self, rng: np.random.Generator, rows: int, length: int):
        """Endless [rows, length + 1] int32 windows of ``rows`` continuous streams.

        Consecutive windows overlap by one token, so window[:, :-1] -> window[:, 1:]
        are the inputs and targets of consecutive LM batches of one stream.
        """
        cumulative_moves = np.cumsum(self.transitions, axis=1)
        cumulative_emits = np.cumsum(self.emission, axis=1)
        states = _draw(rng, np.broadcast_to(np.cumsum(self.start), (rows, len(self.start))))
        previous = _draw(rng, cumulative_emits[states])
        while True:
            window = np.empty((rows, length + 1), np.int32)
            window[:, 0] = previous
            for t in range(1, length + 1):
                states = _draw(rng, cumulative_moves[states])
                window[:, t] = _draw(rng, cumulative_emits[states])
            previous = window[:, -1]
            yield window

    def entropy_floor(self, tokens: np.ndarray) -> float:
        """Mean nats per predicted token of the Bayes-optimal predictor on ``tokens``.

        ``tokens``: [rows, T] continuous streams, each read from its first token (the
        stationary start); every token after the first is predicted, as an LM scored on
        the same rows predicts them.
        """
        belief = np.broadcast_to(self.start, (tokens.shape[0], len(self.start)))
        belief = _normalized(belief * self.emission[:, tokens[:, 0]].T)
        total = 0.0
        for t in range(1, tokens.shape[1]):
            prior = belief @ self.transitions
            likelihood = self.emission[:, tokens[:, t]].T
            joint = prior * likelihood
            total -= np.log(joint.sum(axis=1)).sum()
            belief = _normalized(joint)
        return float(total / (tokens.shape[0] * (tokens.shape[1] - 1)))


def _sparse_rows(rng, rows, columns, nonzeros):
    matrix = np.zeros((rows, columns))
    for row in matrix:
        row[rng.choice(columns, nonzeros, replace=False)] = rng.dirichlet(np.ones(nonzeros))
    return matrix


def _stationary(transitions):
    values, vectors = np.linalg.eig(transitions.T)
    vector = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    return vector / vector.sum()


def _draw(rng, cumulative):
    """One index per row of a batch of cumulative distributions."""
    u = rng.random((cumulative.shape[0], 1)) * cumulative[:, -1:]
    return np.minimum((cumulative < u).sum(axis=1), cumulative.shape[1] - 1)


def _normalized(belief):
    return belief / belief.sum(axis=1, keepdims=True)


def stream_rng(*entropy: int) -> np.random.Generator:
    """A generator seeded by a tuple of ints: (seed, group, stream set) never collide."""
    return np.random.default_rng(np.random.SeedSequence([int(e) for e in entropy]))


def held_out_streams(source: HiddenMarkovSource, rows: int, length: int,
                     num_windows: int, split: str = "test") -> np.ndarray:
    """[rows, num_windows * length + 1] tokens of fixed held-out streams of ``split``
    (``HELD_OUT_TAGS``): the same for every seed, group and replica layout (replicas take
    slices of rows)."""
    windows = source.windows(stream_rng(HELD_OUT_TAGS[split], source.spec.seed), rows, length)
    parts = [next(windows) for _ in range(num_windows)]
    return np.concatenate([parts[0]] + [part[:, 1:] for part in parts[1:]], axis=1)


def batches_of_streams(streams: np.ndarray, row_sets: list[slice], length: int
                       ) -> tf.data.Dataset:
    """(inputs, targets) batches of fixed ``streams``, round-robin over ``row_sets``
    (one per local replica, as ``lm_batches``)."""
    inputs, targets = [], []
    for start in range(0, streams.shape[1] - 1, length):
        for rows in row_sets:
            inputs.append(streams[rows, start:start + length])
            targets.append(streams[rows, start + 1:start + length + 1])
    return tf.data.Dataset.from_tensor_slices((np.stack(inputs), np.stack(targets)))


def lm_batches(source: HiddenMarkovSource, rngs, rows: int, length: int) -> tf.data.Dataset:
    """(inputs, targets) [rows, length] batches, round-robin over one stream set per rng.

    With a pipeline feeding R local replicas, element j goes to replica j % R
    (``distribute_datasets_from_function``), so passing one rng per local replica keeps
    each replica on its own continuous streams. Endless.
    """
    def generate():
        streams = [source.windows(rng, rows, length) for rng in rngs]
        while True:
            for windows in streams:
                window = next(windows)
                yield window[:, :-1], window[:, 1:]

    spec = tf.TensorSpec((rows, length), tf.int32)
    return tf.data.Dataset.from_generator(generate, output_signature=(spec, spec))
