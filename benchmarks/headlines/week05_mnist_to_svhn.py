# The headline numbers of notebooks/week05_mnist_to_svhn.ipynb, evaluated in its kernel after its last cell
# by benchmarks/notebook_headlines.py: every name below is a variable the notebook defines.
# ruff: noqa: F821
HEADLINES = {
    "svhn_logreg_test_accuracy": round(float(logreg_test_accuracy), 4),
    "svhn_cnn_test_accuracy": round(float(cnn_test_accuracy), 4),
    "data": data_source,
}
