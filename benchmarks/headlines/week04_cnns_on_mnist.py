# The headline numbers of notebooks/week04_cnns_on_mnist.ipynb, evaluated in its kernel after its last cell
# by benchmarks/notebook_headlines.py: every name below is a variable the notebook defines.
# ruff: noqa: F821
HEADLINES = {
    "mnist_logreg_test_accuracy": float(test_accuracy["logreg"]),
    "mnist_cnn_cpcpff_test_accuracy": float(test_accuracy["cnn_cpcpff"]),
    "mnist_cnn_cpcpff_dropout_test_accuracy": float(test_accuracy["cnn_cpcpff_dropout"]),
    "train_size": int(len(x_train)),
    "test_size": int(len(x_test)),
}
