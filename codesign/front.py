"""Which trials a search's results count: distinct completed candidates (a repeat of a finished
one is answered from it and not counted), those meeting every constraint, and their Pareto front —
whatever the sampler knows of constraints or repeats."""

from __future__ import annotations

import numpy as np
import optuna


def distinct_completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Completed trials measured in full by this run that are not repeats of an earlier one:
    what the budget counts (a candidate whose training stopped early, dominated, told the
    sampler its best reachable values but was not measured; a warm-start prior came from
    another run)."""
    return [t for t in study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.COMPLETE,))
            if not {"duplicate_of", "stopped_early", "warm_start"} & t.user_attrs.keys()]


def feasible(trial: optuna.trial.FrozenTrial) -> bool:
    return all(c <= 0 for c in trial.user_attrs.get("constraints", []))


def pareto_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The non-dominated distinct completed trials that meet every constraint (whatever the
    sampler knows of constraints)."""
    trials = [t for t in distinct_completed(study) if feasible(t)]
    if not trials:  # an empty run: nothing completed (pruned, failed, or killed early)
        return []
    sign = np.array([-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0
                     for d in study.directions])
    loss = np.array([t.values for t in trials], np.float64).reshape(len(trials), -1) * sign
    return [t for i, t in enumerate(trials)
            if not any(np.all(loss[j] <= loss[i]) and np.any(loss[j] < loss[i])
                       for j in range(len(trials)))]


def held_out_score(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict | None:
    """{accuracy, images} of a front trial on the test split, once measured
    (`codesign.search.score_front`)."""
    return study.user_attrs.get(f"test:{trial.number}")
