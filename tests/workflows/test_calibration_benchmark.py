"""benchmarks/calibration.py judges exactly the parameters its problem samples."""

from tests._benchmarks import load_benchmark


def test_calibration_benchmark_truth_names_the_sampled_parameters():
    # Truth: the problem's own list of reported parameters. Every sampled parameter has a true
    # value in TRUTH, and TRUTH names nothing the posterior lacks (a stale name — boundary_sd
    # once — made every row fail with a KeyError after its sampler had run).
    benchmark = load_benchmark("calibration")
    patient = benchmark.patient_at(8.0)
    problem = benchmark.problem_for(patient, "split")
    derived = {"mu_D", "mu_rho"}
    assert set(problem.parameter_names) - derived == set(benchmark.TRUTH)
    assert len(benchmark.TRUTH) == 11
