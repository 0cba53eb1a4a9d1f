import optuna
import pytest
import torch

from codesign.data import load_digits
from codesign.errors import ConfigError
from codesign.experiment import load_experiment, parse_experiment
from codesign.models import BlockSpec, Candidate, build_model
from codesign.space import SPACE_DIR, load_space, parse_space
from codesign.train import TrainConfig, train
from hw.config import load_accel_config

EXPERIMENTS = ["demo", "digits", "fashion", "fashion-bits"]


@pytest.mark.parametrize("name", sorted(p.stem for p in SPACE_DIR.glob("*.yaml")))
def test_shipped_spaces_give_valid_candidates_on_a_fixed_parameter_set(name):
    space = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    names = None
    for _ in range(20):
        trial = study.ask()
        candidate, accel = space.suggest(trial)
        assert len(candidate.blocks) in space.depth and accel == {}
        assert candidate.blocks[0].bits[1] == 8
        assert names is None or set(trial.params) == names  # the same parameters every time
        names = set(trial.params)
        study.tell(trial, 0.0)
    assert names == set(space.parameters())


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_shipped_experiments_load(name):
    exp = load_experiment(f"configs/experiments/{name}.yaml")
    assert exp.search.train.pretrain_epochs + exp.search.train.epochs > 0


@pytest.mark.parametrize("data, message", [
    ({"depth": [2], "width": [8], "colour": [1]}, "unknown field 'colour'"),
    ({"depth": [2], "width": [8], "kernel": [4]}, "field 'kernel': invalid choice 4"),
    ({"depth": [2], "width": []}, "field 'width': must be a non-empty list"),
    ({"depth": [2], "blocks": [{"width": [4]}]}, "no width choices for block 1"),
    ({"depth": [2], "width": [8], "bits": [[8, 4]]}, "field 'bits': invalid choice [8, 4]"),
    ({"depth": [2], "width": [8], "first_bits": [[8, 2]]}, "first block reads the 8-bit image"),
    ({"depth": [1], "width": [8], "blocks": [{}, {}]}, "at most max(depth) = 1"),
    ({"depth": [2], "width": [8], "blocks": [{"stride": [3]}]}, "blocks[0]: field 'stride'"),
    ({"depth": [2], "width": [8], "accelerator": {"clock": [1]}}, "unknown field 'clock'"),
    ({"depth": [2], "width": [8], "head": ["max"]}, "field 'head': invalid choice 'max'"),
])
def test_invalid_spaces_name_the_field(data, message):
    with pytest.raises(ConfigError) as err:
        parse_space(data, "space.yaml")
    assert "space.yaml" in str(err.value) and message in str(err.value)


def _experiment(**search):
    return {"name": "x", "dataset": "digits", "accelerator": "tiny",
            "model": {"widths": [4], "strides": [1], "kernel": 3},
            "train": {"epochs": 1, "batch_size": 8, "lr": 0.01},
            "search": {"trials": 1, "objectives": ["accuracy"],
                       "space": {"depth": [1], "width": [4, 8]}, **search}}


def test_experiment_errors_name_the_search_field():
    with pytest.raises(ConfigError, match="exp.yaml: search: enqueue\\[0\\]: unknown parameter"):
        parse_experiment(_experiment(enqueue=[{"b9.width": 4}]), "exp.yaml")
    with pytest.raises(ConfigError, match="b0.width = 5 is not among its choices"):
        parse_experiment(_experiment(enqueue=[{"b0.width": 5}]), "exp.yaml")
    with pytest.raises(ConfigError, match="constraints: unknown field 'power'"):
        parse_experiment(_experiment(constraints={"power": {"max": 1}}), "exp.yaml")
    with pytest.raises(ConfigError, match="vector_width"):  # not a power of two
        parse_experiment(_experiment(space={"depth": [1], "width": [4],
                                            "accelerator": {"vector_width": [96]}}), "exp.yaml")
    exp = parse_experiment(_experiment(constraints={"cycles": {"max": 5000}}), "exp.yaml")
    assert exp.search.constraints == (("cycles", "max", 5000.0),)
    for bad in (0, -5, "1h", float("nan")):
        with pytest.raises(ConfigError, match="exp.yaml: search: field 'time_budget_s'"):
            parse_experiment(_experiment(time_budget_s=bad), "exp.yaml")
    assert parse_experiment(_experiment(time_budget_s=600), "exp.yaml").search.time_budget_s \
        == 600.0


def test_a_shared_parent_needs_a_fixed_architecture_and_both_phases():
    with pytest.raises(ConfigError, match="field 'shared_parent'.*b0.width have several"):
        parse_experiment(_experiment(shared_parent=True, pretrain_epochs=1), "exp.yaml")
    bits_only = {"depth": [1], "width": [4], "bits": [[8, 8], [2, 2]]}
    with pytest.raises(ConfigError, match="field 'shared_parent'.*pretrain_epochs"):
        parse_experiment(_experiment(shared_parent=True, space=bits_only), "exp.yaml")
    exp = parse_experiment(_experiment(shared_parent=True, pretrain_epochs=1, space=bits_only),
                           "exp.yaml")
    parent = exp.search.space.parent()
    assert parent.blocks[0].width == 4 and parent.blocks[0].bits == (8, 8)


def test_searched_accelerator_parameters_make_validated_configs():
    space = parse_space({"depth": [1], "width": [4], "accelerator": {"vector_width": [64, 128]}},
                        "s")
    base = load_accel_config("tiny")
    wide = space.accel_config(base, {"vector_width": 128})
    assert wide.vector_width == 128 and wide.name == "tiny-vector_width128"
    assert wide.hardware_hash() != base.hardware_hash()


def test_candidate_round_trips_and_rejects_bad_blocks():
    c = Candidate((BlockSpec(4, 2), BlockSpec(8, 1, 5, True, True, (2, 2))), "pool", (1, 8))
    assert Candidate.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="image"):
        Candidate((BlockSpec(4, bits=(8, 2)),))
    with pytest.raises(ConfigError, match="kernel"):
        Candidate((BlockSpec(4, kernel=4),))


def test_time_limit_leaves_quantization_aware_fine_tuning_its_share():
    data = load_digits()
    c = Candidate((BlockSpec(4, 2, bits=(8, 8)), BlockSpec(8, 2, bits=(2, 2))), "flatten", (2, 8))
    model = train(build_model(c, data.input_shape, 10), data,
                  TrainConfig(epochs=5, pretrain_epochs=50, time_limit_s=0.5))
    assert not model.ptq
    assert all(float(b.quant.amax) > 0 for b in model.blocks)  # quantizers were trained
    assert float(model.fc_quant.amax) > 0
    ptq = train(build_model(c, data.input_shape, 10), data, TrainConfig(epochs=0,
                                                                         pretrain_epochs=1))
    assert ptq.ptq and ptq.quant_spec().act_scales == {}
    assert set(ptq.quant_spec().layers) == {"blocks.0.conv", "blocks.1.conv", "fc"}
    assert ptq(torch.from_numpy(data.x_test[:2])).shape == (2, 10)
