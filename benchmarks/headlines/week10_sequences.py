HEADLINES = {
    "data": "Seattle's daily weather 2012-2015 (real); memory task and reviews generated here",
    "weather_lstm_test_mae": round(lstm_mae, 4),
    "weather_naive_test_mae": round(naive_mae, 4),
    "weather_linear_test_mae": round(linear_mae, 4),
    "weather_lstm_epochs": epochs,
    "memory_lstm_accuracy": round(memory_accuracy["LSTM"], 4),
    "memory_simplernn_accuracy": round(memory_accuracy["SimpleRNN"], 4),
    "text_test_accuracy": round(text_accuracy, 4),
    "weather_train_windows": len(x_train),
    "weather_test_windows": len(x_test),
    "text_train_reviews": n_fit,
}
