# The headline numbers of notebooks/week01_tensorflow_keras.ipynb, evaluated in its kernel after its last
# cell by benchmarks/notebook_headlines.py: every name below is a variable the notebook defines.
# ruff: noqa: F821
HEADLINES = {
    "data": "scikit-learn's 8x8 digits (real, ships with the package)",
    "digits_guessing_accuracy": 0.1,
    "digits_fit_test_accuracy": round(float(test_acc_fit), 4),
    "digits_gradient_tape_loop_test_accuracy": round(float(test_acc_loop), 4),
    "digits_epochs": epochs,
    "digits_train_size": len(x_train),
    "digits_validation_size": len(x_val),
    "digits_test_size": len(x_test),
    "graph_vs_eager_speedup": round(eager_s / graph_s, 1),
    "keras_version": keras.__version__,
}
