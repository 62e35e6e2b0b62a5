HEADLINES = {
    "keras_test_accuracy": round(float(keras_accuracy), 4),
    "tflite_float32_test_accuracy": round(float_accuracy, 4),
    "tflite_quantized_test_accuracy": round(quant_accuracy, 4),
    "keras_file_kb": round(keras_kb, 1),
    "tflite_float32_kb": round(float_kb, 1),
    "tflite_quantized_kb": round(quant_kb, 1),
    "data": f"{data_source} UCI banknote ({len(x_train)} train / {len(x_test)} test notes)",
}
