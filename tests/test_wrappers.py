"""kfit.wrappers: scikit-learn's own estimator checks, model selection, pickling, targets."""

from __future__ import annotations

import copy
import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import kfit

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_iris, make_regression  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from kfit.wrappers import SKLearnClassifier, SKLearnRegressor  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


# Build functions live at module level so that loky's worker processes can import them.
def build_classifier(X, y, hidden=8, learning_rate=0.05, dtype="float32"):
    model = kfit.Sequential(
        nn.Linear(X.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, y.shape[1]), nn.Softmax(dim=-1)
    ).to(getattr(torch, dtype))
    model.compile(
        optimizer=kfit.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
    )
    return model


def build_regressor(X, y, hidden=8, learning_rate=0.05, dtype="float32"):
    model = kfit.Sequential(nn.Linear(X.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, y.shape[1]))
    model.to(getattr(torch, dtype))
    model.compile(optimizer=kfit.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    return model


def build_logits_classifier(X, y):
    model = kfit.Sequential(nn.Linear(X.shape[1], y.shape[1]))
    model.compile(optimizer="adam", loss=nn.CrossEntropyLoss())
    return model


def build_recording_where(X, y):
    """A classifier that records the process and the kfit it was built with."""
    model = build_classifier(X, y)
    model.built_in = (os.getpid(), kfit.__file__)
    return model


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# ---------------------------------------------------------------------- scikit-learn's checks


# float64 models: `check_sample_weight_equivalence_on_dense_data` compares weighted and
# repeated samples at rtol=1e-7, which float32 rounding (about 3e-7 here) does not meet.
# The classifier takes routed parameters, the regressor Keras's dicts.
@parametrize_with_checks(
    [
        SKLearnClassifier(build_classifier, model__dtype="float64", epochs=5),
        SKLearnRegressor(
            build_regressor, model_kwargs={"dtype": "float64"}, fit_kwargs={"epochs": 5}
        ),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------- parameters


def test_routed_parameters_reach_the_build_function_and_fit(iris):
    X, y = iris
    est = SKLearnClassifier(build_classifier, model__hidden=5, epochs=2)
    est.set_params(model__hidden=6, fit__shuffle=False, epochs=3).fit(X, y)
    assert est.model_.module[0].out_features == 6
    assert len(est.history_["loss"]) == 3
    params = est.get_params()
    assert params["model__hidden"] == 6
    assert params["fit__shuffle"] is False
    assert params["epochs"] == 3


def test_routed_parameters_override_the_dicts(iris):
    X, y = iris
    est = SKLearnClassifier(
        build_classifier,
        model_kwargs={"hidden": 4},
        fit_kwargs={"epochs": 1},
        model__hidden=7,
        epochs=2,
    ).fit(X, y)
    assert est.model_.module[0].out_features == 7
    assert len(est.history_["loss"]) == 2


def keras_style_build(X, y, loss, layers=(10,)):
    """The build function of Keras's wrapper docs, written for kfit."""
    widths = [X.shape[1], *layers]
    pairs = zip(widths[:-1], widths[1:], strict=True)
    hidden = [m for a, b in pairs for m in (nn.Linear(a, b), nn.ReLU())]
    model = kfit.Sequential(*hidden, nn.Linear(widths[-1], y.shape[1]), nn.Softmax(dim=-1))
    model.compile(loss=loss, optimizer="rmsprop")
    return model


def test_keras_positional_arguments_and_dicts_work(iris):
    X, y = iris
    est = SKLearnClassifier(
        keras_style_build,
        False,
        {"loss": "categorical_crossentropy", "layers": [6, 5]},
        {"epochs": 2},
    ).fit(X, y)
    assert [m.out_features for m in est.model_.module if isinstance(m, nn.Linear)] == [6, 5, 3]
    assert len(est.history_["loss"]) == 2


def test_fit_keyword_arguments_take_precedence(iris):
    X, y = iris
    est = SKLearnClassifier(build_classifier, epochs=5).fit(X, y, epochs=1)
    assert len(est.history_["loss"]) == 1


def test_grid_search_over_model_and_fit_parameters(iris):
    X, y = iris
    search = GridSearchCV(
        SKLearnClassifier(build_classifier, random_state=0),
        param_grid={"model__hidden": [4, 8], "epochs": [1, 3]},
        cv=3,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_
    assert best.model_.module[0].out_features == search.best_params_["model__hidden"]
    assert len(best.history_["loss"]) == search.best_params_["epochs"]
    assert search.best_score_ > 0.7


def test_grid_search_in_two_processes_matches_one(iris):
    X, y = iris
    grid = {"model__hidden": [4, 8], "epochs": [2]}
    est = SKLearnClassifier(build_classifier, random_state=0)
    options = {"cv": 3, "refit": False, "scoring": "neg_log_loss"}
    serial = GridSearchCV(est, grid, **options).fit(X, y)
    parallel = GridSearchCV(est, grid, n_jobs=2, **options).fit(X, y)
    np.testing.assert_array_equal(
        parallel.cv_results_["split0_test_score"], serial.cv_results_["split0_test_score"]
    )


def test_parallel_fits_run_in_worker_processes_with_this_kfit(iris):
    X, y = iris
    result = cross_validate(
        SKLearnClassifier(build_recording_where, epochs=1),
        X,
        y,
        cv=4,
        n_jobs=2,
        return_estimator=True,
    )
    places = [est.model_.built_in for est in result["estimator"]]
    assert all(pid != os.getpid() for pid, _ in places)
    assert {path for _, path in places} == {kfit.__file__}


def test_cross_val_score_of_a_pipeline_with_a_scaler():
    X, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(
        StandardScaler(), SKLearnClassifier(build_classifier, epochs=10, random_state=0)
    )
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.mean() > 0.8


def test_pipeline_routes_nested_parameters(iris):
    X, y = iris
    pipeline = make_pipeline(StandardScaler(), SKLearnClassifier(build_classifier, epochs=1))
    pipeline.set_params(sklearnclassifier__model__hidden=3).fit(X, y)
    assert pipeline[-1].model_.module[0].out_features == 3
    assert pipeline.get_params()["sklearnclassifier__model__hidden"] == 3


def test_clone_copies_parameters_and_a_model_instance(iris):
    X, y = iris
    instance = build_classifier(X, np.eye(3)[y])
    est = SKLearnClassifier(instance, epochs=1, fit__shuffle=False).fit(X, y)
    copied = clone(est)
    assert copied.get_params()["fit__shuffle"] is False
    assert copied.epochs == 1
    assert copied.model is not instance
    assert not hasattr(copied, "model_")
    for a, b in zip(copied.model.parameters(), instance.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_model_instance_is_copied_and_never_trained(iris):
    X, y = iris
    instance = build_classifier(X, np.eye(3)[y])
    before = copy.deepcopy(instance.state_dict())
    first = SKLearnClassifier(instance, epochs=2, random_state=0).fit(X, y)
    second = SKLearnClassifier(instance, epochs=2, random_state=0).fit(X, y)
    assert first.model_ is not instance
    for key, value in instance.state_dict().items():
        assert torch.equal(value, before[key])
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))


def test_unknown_parameter_is_reported_at_fit(iris):
    X, y = iris
    est = SKLearnClassifier(build_classifier, hiden=3)  # stored, as scikit-learn wants
    with pytest.raises(TypeError, match=r"unexpected parameters \['hiden'\]"):
        est.fit(X, y)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epochs": 2, "fit__epochs": 3}, ValueError, "`epochs` is given twice"),
        ({"fit_kwargs": {"sample_weight": [1.0]}}, ValueError, "sample_weight"),
        ({"model_kwargs": [1]}, TypeError, "`model_kwargs` must be a dict"),
        ({"fit_kwargs": "epochs=2"}, TypeError, "`fit_kwargs` must be a dict"),
        ({"random_state": "seed"}, ValueError, "`random_state` must be None"),
    ],
)
def test_invalid_parameters_raise_at_fit(iris, kwargs, error, match):
    X, y = iris
    with pytest.raises(error, match=match):
        SKLearnClassifier(build_classifier, **kwargs).fit(X, y)


@pytest.mark.parametrize(
    ("model", "error", "match"),
    [
        (lambda X, y: nn.Linear(4, 3), TypeError, "must return a compiled kfit.Model"),
        (lambda X, y: kfit.Sequential(nn.Linear(4, 3)), ValueError, "compile"),
        (nn.Linear(4, 3), TypeError, r"wrap the module, kfit.Model\(module\)"),
        ("mlp", TypeError, "`model` must be a compiled kfit.Model"),
    ],
)
def test_invalid_models_raise_before_training(iris, model, error, match):
    X, y = iris
    est = SKLearnClassifier(model)
    with pytest.raises(error, match=match):
        est.fit(X, y)
    assert not hasattr(est, "classes_")


def test_build_arguments_with_a_model_instance_raise(iris):
    X, y = iris
    est = SKLearnClassifier(build_classifier(X, np.eye(3)[y]), model__hidden=4)
    with pytest.raises(ValueError, match="need `model` to be a build function"):
        est.fit(X, y)


# ---------------------------------------------------------------------- fitted state


def test_pickled_estimator_predicts_identically(iris):
    X, y = iris
    est = SKLearnClassifier(build_classifier, epochs=2, random_state=0).fit(X, y)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict_proba(X), est.predict_proba(X))
    assert restored.history_ == est.history_
    np.testing.assert_array_equal(restored.classes_, est.classes_)


def test_fitted_model_with_metrics_pickles_and_deep_copies_independently(iris):
    X, y = iris
    targets = np.eye(3, dtype=np.float32)[y]
    model = kfit.Sequential(nn.Linear(4, 3), nn.Softmax(dim=-1))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, targets, epochs=1, verbose=0)
    before = model.get_metrics_result()
    for copied in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        copied.fit(X[:10], targets[:10], epochs=1, verbose=0)
        assert model.get_metrics_result() == before  # the copy has its own accumulators
        assert set(copied.history.history) == {"loss", "accuracy"}


def test_deep_copy_of_a_jit_compiled_model_compiles_its_own():
    model = kfit.Sequential(nn.Linear(3, 1))
    model.compile(loss="mse", jit_compile=True)
    copied = copy.deepcopy(model)
    assert copied.compile_state.jit is not None
    assert copied.compile_state.jit is not model.compile_state.jit


def test_random_state_makes_fits_identical_and_restores_global_generators(iris):
    X, y = iris
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    first = SKLearnClassifier(build_classifier, epochs=2, random_state=3).fit(X, y)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()
    second = SKLearnClassifier(build_classifier, epochs=2, random_state=3).fit(X, y)
    other = SKLearnClassifier(build_classifier, epochs=2, random_state=4).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert not np.array_equal(first.predict_proba(X), other.predict_proba(X))


def test_warm_start_continues_training_the_same_model(iris):
    X, y = iris
    est = SKLearnClassifier(build_classifier, warm_start=True, epochs=2, random_state=0)
    est.fit(X, y)
    model, first_losses = est.model_, list(est.history_["loss"])
    est.fit(X, y)
    assert est.model_ is model
    assert est.history_["loss"][:2] == first_losses
    assert len(est.history_["loss"]) == 4
    assert est.history_["loss"][-1] < first_losses[-1]


def test_without_warm_start_each_fit_builds_a_new_model(iris):
    X, y = iris
    est = SKLearnClassifier(build_classifier, epochs=1).fit(X, y)
    model = est.model_
    est.fit(X, y)
    assert est.model_ is not model
    assert len(est.history_["loss"]) == 1


def test_warm_start_rejects_new_labels(iris):
    X, y = iris
    est = SKLearnClassifier(build_classifier, warm_start=True, epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="labels the classifier was not fitted on"):
        est.fit(X, np.where(y == 2, 7, y))


def test_fit_is_silent_by_default(iris, capsys):
    X, y = iris
    SKLearnClassifier(build_classifier, epochs=1).fit(X, y)
    assert capsys.readouterr().out == ""
    SKLearnClassifier(build_classifier, epochs=1, verbose=2).fit(X, y)
    assert "Epoch 1/1" in capsys.readouterr().out


def test_feature_names_are_kept_from_a_dataframe(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    est = SKLearnClassifier(build_classifier, epochs=1).fit(frame, y)
    assert est.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    assert est.n_features_in_ == 4


# ---------------------------------------------------------------------- targets and weights


def test_string_labels_round_trip(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    est = SKLearnClassifier(build_classifier, epochs=5, random_state=0).fit(X, names)
    assert est.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    predicted = est.predict(X)
    assert set(predicted) <= set(est.classes_)
    assert est.score(X, names) > 0.7
    probabilities = est.predict_proba(X)
    assert probabilities.shape == (150, 3)
    np.testing.assert_array_equal(est.classes_[probabilities.argmax(1)], predicted)


def test_binary_labels_train_on_two_one_hot_columns(iris):
    X, y = iris
    labels = np.where(y == 0, "yes", "no")
    est = SKLearnClassifier(build_classifier, epochs=3, random_state=0).fit(X, labels)
    assert est.model_.module[-2].out_features == 2
    assert est.predict_proba(X).shape == (150, 2)
    assert est.score(X, labels) > 0.9


def test_one_hot_targets_match_label_targets(iris):
    X, y = iris
    one_hot = np.eye(3, dtype=int)[y]
    from_labels = SKLearnClassifier(build_classifier, epochs=2, random_state=0).fit(X, y)
    from_one_hot = SKLearnClassifier(build_classifier, epochs=2, random_state=0).fit(X, one_hot)
    np.testing.assert_array_equal(from_one_hot.classes_, [0, 1, 2])
    np.testing.assert_array_equal(from_one_hot.predict_proba(X), from_labels.predict_proba(X))
    predicted = from_one_hot.predict(X)
    assert predicted.shape == (150, 3)
    np.testing.assert_array_equal(predicted.argmax(1), from_labels.predict(X))
    assert from_one_hot.score(X, one_hot) == from_labels.score(X, y)


def test_multilabel_targets_are_refused(iris):
    X, y = iris
    multilabel = np.ones((150, 3))
    with pytest.raises(ValueError, match="one-hot rows"):
        SKLearnClassifier(build_classifier).fit(X, multilabel)


def test_logit_outputs_go_through_a_softmax(iris):
    X, y = iris
    est = SKLearnClassifier(build_logits_classifier, epochs=2, random_state=0).fit(X, y)
    logits = est.model_.predict(X.astype(np.float32), verbose=0).astype(np.float64)
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(est.predict_proba(X), expected, rtol=1e-10)


def test_sample_weight_changes_the_fit(iris):
    X, y = iris
    weights = np.where(y == 2, 20.0, 1.0)
    plain = SKLearnClassifier(build_classifier, epochs=3, random_state=0).fit(X, y)
    weighted = SKLearnClassifier(build_classifier, epochs=3, random_state=0)
    weighted.fit(X, y, sample_weight=weights)
    assert weighted.predict_proba(X)[:, 2].mean() > plain.predict_proba(X)[:, 2].mean() + 0.05


def test_integer_weights_count_like_repeated_samples_in_float32():
    rng = np.random.default_rng(0)
    X, y = rng.random((12, 4)), rng.integers(0, 3, 12)
    weights = np.array([0, 1, 2, 3] * 3)
    est = SKLearnClassifier(build_classifier, epochs=4, random_state=0)
    weighted = clone(est).fit(X, y, sample_weight=weights).predict_proba(X)
    repeated = clone(est).fit(np.repeat(X, weights, 0), np.repeat(y, weights)).predict_proba(X)
    np.testing.assert_allclose(weighted, repeated, rtol=1e-5)


def test_class_weight_is_keyed_by_label(iris):
    X, y = iris
    names = np.array(["a", "b", "c"])[y]
    weights = {"a": 1.0, "b": 1.0, "c": 5.0}
    est = SKLearnClassifier(build_classifier, epochs=2, random_state=0)
    by_class = clone(est).set_params(fit__class_weight=weights).fit(X, names)
    by_sample = clone(est).fit(X, names, sample_weight=np.where(names == "c", 5.0, 1.0))
    np.testing.assert_array_equal(by_class.predict_proba(X), by_sample.predict_proba(X))


def test_validation_data_is_encoded_like_y(iris):
    X, y = iris
    names = np.array(["a", "b", "c"])[y]
    est = SKLearnClassifier(build_classifier, epochs=2)
    est.fit(X[:120], names[:120], validation_data=(X[120:], names[120:]))
    assert len(est.history_["val_loss"]) == 2


def test_one_weighted_class_is_an_error(iris):
    X, y = iris
    with pytest.raises(ValueError, match="at least 2 classes with a positive weight"):
        SKLearnClassifier(build_classifier).fit(X, y, sample_weight=(y == 1).astype(float))


@pytest.mark.parametrize("shape", [(), (3,)])
def test_regressor_predicts_in_the_shape_of_y(shape):
    X, y = make_regression(60, 5, n_targets=int(np.prod(shape)) or 1, random_state=0)
    y = y.reshape(60, *shape) / y.std()
    est = SKLearnRegressor(build_regressor, epochs=30, random_state=0).fit(X, y)
    predicted = est.predict(X)
    assert predicted.shape == y.shape
    assert predicted.dtype == np.float64
    assert est.model_.module[-1].out_features == (shape[0] if shape else 1)
    assert est.score(X, y) > 0.5
