# The headline numbers of notebooks/week02_neural_networks_by_hand.ipynb, evaluated in its kernel after its
# last cell by benchmarks/notebook_headlines.py: every name below is a variable the notebook defines.
# ruff: noqa: F821
HEADLINES = {
    "data": "UCI banknote notes (real), make_circles (generated), scikit-learn's 8x8 digits (real)",
    "banknote_fitted_neuron_accuracy": round(float(acc_fitted), 4),
    "circles_logistic_test_accuracy": round(float(acc_linear), 4),
    "circles_hidden_layer_test_accuracy": round(float(acc_network), 4),
    "digits_numpy_mlp_test_accuracy": round(numpy_accuracy, 4),
    "digits_keras_sgd_test_accuracy": round(keras_accuracy, 4),
    "digits_gradient_check_worst_relative_error": f"{worst:.1e}",
    "digits_keras_gradient_max_difference": f"{grad_diff:.1e}",
    "digits_epochs": epochs,
    "digits_train_size": len(x_train),
    "digits_test_size": len(x_test),
}
