HEADLINES = {
    "mnist_plain_deep_test_accuracy": round(test_accuracy["plain"], 4),
    "mnist_residual_deep_test_accuracy": round(test_accuracy["residual"], 4),
    "mnist_small_cnn_augmented_test_accuracy": round(cnn_test_accuracy, 4),
    "inception_5x5_param_savings": round(savings, 2),
    "separable_3x3_64_to_128_param_savings": round(separable_savings, 2),
    "separable_3x3_64_to_128_madds_ratio": round(madds_ratio, 4),
    "train_size": int(len(x_train)),
    "test_size": int(len(x_test)),
}
