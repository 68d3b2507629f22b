"""A tiny LM set-up: synthetic WET files, a 400-piece vocabulary, a 2 x 16 LSTM."""

import dataclasses

import tokenizer
from data_pipelines import synthetic_wet, wet
from tf_codistill import config as config_lib
from tf_codistill.tasks.lm import LanguageModelData, LanguageModelSection


def make_corpus(root):
    """(WET files, vocabulary path) written under ``root``."""
    files = []
    for i in range(2):
        path = str(root / f"part-{i}.wet.gz")
        synthetic_wet.write_wet_file(path, seed=i, count=60)
        files.append(path)
    texts = (record.text for path in files for record in wet.read_wet_file(path, wet.ReadStats()))
    vocab = tokenizer.train_vocabulary(texts, str(root / "vocab.model"), vocab_size=400)
    return files, vocab


def lm_config(model_dir, files, vocab, **changes):
    config = config_lib.RunConfig(
        task="lm", model_dir=str(model_dir),
        trainer=config_lib.TrainerConfig(train_steps=6, batch_size=4, steps_per_loop=3,
                                         eval_steps=2, learning_rate=0.01),
        data=LanguageModelData(train_files=tuple(files), vocab=vocab, seq_len=8,
                               min_paragraph_words=5, validation_fraction=0.2),
        model=LanguageModelSection(embedding_dim=8, units=16, num_layers=2))
    return dataclasses.replace(config, **changes)


def reseeded(config, model_dir, seed):
    """``config`` as another run: in ``model_dir``, at ``seed``."""
    return dataclasses.replace(config, model_dir=str(model_dir), trainer=dataclasses.replace(
        config.trainer, seed=seed))
