"""One definition per setting: flags derived from the config's fields, parsed in-process."""

import dataclasses

import pytest
from absl import flags

from tf_codistill import config as config_lib
from tf_codistill.runner import flags as flags_lib
from tf_codistill.tasks import TASKS, resolve, task_class
from tf_codistill.tasks.clusters import ClustersModelSection
from tf_codistill.tasks.lm import LanguageModelSection


def parse(*argv):
    flag_values = flags.FlagValues()
    flags_lib.define_flags(flag_values)
    flag_values(["train", *argv])
    return flags_lib.config_from_flags(flag_values)


def test_every_knob_of_every_section_is_a_flag_with_its_help():
    flag_values = flags.FlagValues()
    flags_lib.define_flags(flag_values)
    sections = [config_lib.RunConfig, *config_lib.SECTIONS.values()]
    sections += [task_class(task).ModelConfig for task in TASKS]
    sections += [task_class(task).DataConfig for task in TASKS]
    for section in sections:
        for field in config_lib.knobs(section):
            assert field.name in flag_values, field.name
            assert field.metadata["help"].split(":")[0] in flag_values[field.name].help


def test_no_flags_give_the_dataclass_defaults():
    assert parse() == resolve(config_lib.RunConfig())
    assert parse().model == LanguageModelSection()


def test_flags_reach_their_fields_with_the_fields_types():
    config = parse("--task=clusters", "--distill_weight=0.5", "--lr_decay_boundaries=10,20",
                   "--hidden_units=3,4")
    assert config.codistill.distill_weight == 0.5
    assert config.trainer.lr_decay_boundaries == (10, 20)
    assert config.model == ClustersModelSection(hidden_units=(3, 4))
    config = parse("--task=criteo", "--train_files=a.wet.gz,123")
    assert config.data.train_files == ("a.wet.gz", "123")


def test_a_name_two_tasks_share_takes_each_tasks_own_default():
    assert parse("--task=clusters").model.num_classes == 8
    assert parse("--task=imagenet").model.num_classes == 1000
    assert parse("--task=imagenet", "--num_classes=4").model.num_classes == 4


def test_a_config_file_is_the_start_and_given_flags_override_it(tmp_path):
    saved = parse("--task=clusters", "--num_groups=2", "--distill_weight=0.25",
                  "--hidden_units=5", f"--model_dir={tmp_path}")
    path = str(tmp_path / "run.json")
    config_lib.write_json(path, config_lib.to_dict(saved))
    assert parse(f"--config={path}") == saved
    resumed = parse(f"--config={path}", "--group=1", "--train_steps=7")
    assert resumed == dataclasses.replace(
        saved, group=1, trainer=dataclasses.replace(saved.trainer, train_steps=7))


def test_a_model_flag_of_another_task_is_refused_not_ignored():
    with pytest.raises(config_lib.ConfigError,
                       match=r"--units sets the model of --task=hmm_lm\|lm, not of --task=criteo"):
        parse("--task=criteo", "--units=512")


def test_a_data_flag_of_another_task_is_refused_not_ignored():
    with pytest.raises(config_lib.ConfigError,
                       match=r"--train_files sets the data of --task=criteo\|lm, not of "
                             r"--task=clusters"):
        parse("--task=clusters", "--train_files=a.tsv")


def test_a_list_item_of_the_wrong_type_names_the_flag():
    with pytest.raises(config_lib.ConfigError, match="--lr_decay_boundaries=10,x: every item "
                                                     "must be int"):
        parse("--lr_decay_boundaries=10,x")


def test_checks_name_the_setting_and_the_valid_values():
    with pytest.raises(config_lib.ConfigError, match=r"--reload_interval=0 is out of range; "
                                                     r"pass a value >= 1"):
        config_lib.check(parse("--reload_interval=0"))
    with pytest.raises(config_lib.ConfigError, match="--units=0 is out of range"):
        config_lib.check(parse("--units=0"))
    bad = dataclasses.replace(parse(), codistill=dataclasses.replace(
        config_lib.CodistillConfig(), topology="star"))
    with pytest.raises(config_lib.ConfigError, match=r"--topology='star' is not valid"):
        config_lib.check(bad)


def test_resume_refuses_only_what_changes_the_checkpoints_shape(tmp_path):
    config = parse("--task=clusters", f"--model_dir={tmp_path}")
    config_lib.write_or_check(config)
    trained_on = dataclasses.replace(config, trainer=dataclasses.replace(
        config.trainer, weight_decay=0.5, learning_rate=0.1, train_steps=99))
    config_lib.write_or_check(trained_on)  # training knobs may change between reruns
    wider = dataclasses.replace(config, model=ClustersModelSection(hidden_units=(128,)))
    with pytest.raises(config_lib.ConfigError, match="different architecture"):
        config_lib.write_or_check(wider)
    assert resolve(config_lib.read(config.layout.config)) == config


def test_a_saved_config_round_trips_for_every_task():
    for task in TASKS:
        config = resolve(config_lib.RunConfig(task=task, model_dir="x"))
        assert resolve(config_lib.from_dict(config_lib.to_dict(config))) == config
