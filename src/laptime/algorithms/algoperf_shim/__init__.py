"""laptime's stand-in for the parts of AlgoPerf a PyTorch submission imports.

AlgoPerf submissions import ``spec`` and ``pytorch_utils`` from the ``algoperf`` package (v0.6 on)
or from ``algorithmic_efficiency`` (v0.5). When neither is installed,
:func:`laptime.algorithms.algoperf.install_shim` registers this package under both names, so
``from algoperf import spec`` and ``from algorithmic_efficiency.pytorch_utils import pytorch_setup``
give these modules. Only names, signatures and meanings follow AlgoPerf; the code is laptime's,
and the spec types are laptime's own (``spec.Workload`` *is* :class:`laptime.api.Workload`,
``spec.TrainingCompleteError`` *is* :class:`laptime.api.TrainingComplete`), so a submission's
isinstance checks, enum comparisons and ``raise spec.TrainingCompleteError`` work unchanged.

Not provided (PyTorch submissions do not import them): ``random_utils``, ``param_utils``,
``logger_utils``, ``data_utils``, ``jax_utils``/``jax_sharding_utils`` and the workloads.
``docs/algoperf.md`` lists what is supported.
"""
